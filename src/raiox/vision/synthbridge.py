"""Random training systems and training render conditions on top of ``raiox.synth``.

Training systems are drawn from the schema's realistic ranges in look-alike families (a base
design plus variants that differ in one aspect), so the model learns the fine cues that separate
look-alikes. None of them is a demo-catalog system: those are kept for evaluation, and
``is_demo_like`` rejects any draw that matches one. Single random specs come from
``raiox.vision.specdraw``, the evaluation's hard conditions from ``raiox.vision.conditions``: those two
are part of the evaluation renders' ``renderer_digest``, this module is not (editing it re-renders nothing).
"""

from __future__ import annotations

import copy

import numpy as np

from raiox.vision.specdraw import (CONE_PLATFORM, PROFILES, draw_apex, draw_collar, draw_connection, draw_taper,
                                   random_spec)

ASPECTS = ("apex", "pitch", "profile", "cone_angle", "connection", "leads", "collar", "taper", "depth", "random")


def holds_connection(spec: dict) -> bool:
    """Whether a real line could sell this size: its body holds its connection with a wall around it (the demo
    catalog's rule since session 17). Where it does not, the renderer cuts the connection to the body's core and
    draws another system's look (a 22 degree cone in too narrow a body renders as a ~12 degree one). The rule
    lives in ``raiox.synth.catalog``; imported from there, not copied (and not re-exported there: any byte
    changed in ``raiox.synth`` re-renders the evaluation caches)."""
    from raiox.synth.catalog import _holds_connection

    return _holds_connection(spec)


def scene_specs(rng: np.random.Generator) -> list[dict]:
    """1-3 valid random specs for a training scene (the count is drawn again on every pass, as the
    localiser's scenes have always been drawn: kept so seeded shards stay the same)."""
    from raiox.synth import validate_spec

    specs: list[dict] = []
    while len(specs) < int(rng.choice([1, 1, 2, 2, 3])):
        spec = random_spec(rng)
        try:
            validate_spec(spec)
            specs.append(spec)
        except Exception:
            continue
    return specs


def family(rng: np.random.Generator, size: int = 4) -> list[dict]:
    """A base design and ``size - 1`` look-alikes that differ from it in one aspect."""
    base = random_spec(rng)
    aspect = str(rng.choice(ASPECTS))
    out = [base]
    for _ in range(size - 1):
        s = copy.deepcopy(base)
        d = s["diameter_mm"]
        if aspect == "apex":
            s["apex"] = draw_apex(rng)
        elif aspect == "pitch":
            s["thread"]["pitch_mm"] = round(float(np.clip(s["thread"]["pitch_mm"] * rng.choice([0.67, 0.8, 1.25, 1.5]),
                                                          0.4, 3.2)), 2)
        elif aspect == "profile":
            s["thread"]["profile"] = str(rng.choice([p for p in PROFILES if p != base["thread"]["profile"]]))
        elif aspect == "cone_angle":
            s["connection"] = draw_connection(rng, "conical", d, angle=float(rng.choice(list(CONE_PLATFORM))))
        elif aspect == "connection":
            s["connection"] = draw_connection(rng, str(rng.choice(["conical", "internal_hex", "external_hex",
                                                                   "tri_channel"])), d)
        elif aspect == "leads":
            s["thread"]["leads"] = int(rng.choice([n for n in (1, 2, 3) if n != base["thread"]["leads"]]))
        elif aspect == "collar":
            s["collar"] = draw_collar(rng)
        elif aspect == "taper":
            s["taper_start"], s["apex_diameter_mm"] = draw_taper(rng, d)
        elif aspect == "depth":
            s["thread"]["depth_mm"] = round(max(0.08, min(s["thread"]["depth_mm"] * float(rng.choice([0.6, 1.5])),
                                                          d * 0.3)), 2)
            s["thread"]["progressive"] = bool(rng.random() < 0.5)
        else:
            s = random_spec(rng)
        out.append(s)
    return out


def signature(spec: dict) -> tuple:
    th, c = spec["thread"], spec["connection"]
    return (spec["collar"]["kind"], th["profile"], round(th["pitch_mm"], 1), th.get("leads", 1), spec["apex"]["shape"],
            spec["apex"].get("hole", "none"), c["kind"], c.get("cone_angle_deg"), spec["taper_start"] >= 0.99)


def is_demo_like(spec: dict, demo_signatures: set) -> bool:
    return signature(spec) in demo_signatures


def train_conditions(rng: np.random.Generator) -> dict:
    """Broad render conditions for training crops: angulation up to 20 degrees, and noise, blur and
    JPEG drawn over wider ranges than ``render_scene``'s defaults (to the hard end of evaluation)."""
    cond = {"angulation": float(20 * rng.beta(1.2, 2.2)),
            "occlusion": 0.0 if rng.random() < 0.75 else float(rng.uniform(0.05, 0.3))}
    p = rng.random()
    if p < 0.2:
        cond["noise"], cond["jpeg"] = float(rng.uniform(0.025, 0.055)), int(rng.integers(25, 60))
    elif p < 0.4:
        cond["blur"] = float(rng.uniform(1.4, 2.8))
    return cond
