"""Random training systems and render conditions on top of ``raiox.synth``.

Training systems are drawn from the schema's realistic ranges in look-alike families (a base
design plus variants that differ in one aspect), so the model learns the fine cues that separate
look-alikes. None of them is a demo-catalog system: those are kept for evaluation, and
``is_demo_like`` rejects any draw that matches one.
"""

from __future__ import annotations

import copy

import numpy as np

CONE_PLATFORM = {8.0: 2.8, 11.0: 2.1, 11.5: 2.5, 16.0: 3.0, 22.0: 3.8, 24.0: 2.95}
ASPECTS = ("apex", "pitch", "profile", "cone_angle", "connection", "leads", "collar", "taper", "depth", "random")
PROFILES = ("v", "square", "buttress", "reverse_buttress", "knife")
EVAL_SIZE = (600, 800)  # evaluation queries: a periapical at half resolution (rendering time)


def _connection(rng: np.random.Generator, kind: str, d: float, angle: float | None = None) -> dict:
    if kind == "conical":
        angle = float(angle if angle is not None else rng.choice(list(CONE_PLATFORM)))
        plat = round(min(CONE_PLATFORM[angle] * rng.uniform(0.92, 1.08), d - 1.0), 2)
        return {"kind": "conical", "cone_angle_deg": angle, "depth_mm": round(float(rng.uniform(1.8, 4.0)), 2),
                "platform_mm": plat, "screw_mm": float(rng.choice([0.0, 1.6, 1.8, 2.0]))}
    if kind == "external_hex":
        return {"kind": "external_hex", "depth_mm": round(float(rng.uniform(0.6, 1.2)), 2),
                "platform_mm": round(min(float(rng.uniform(2.3, 3.4)), d - 0.3), 2), "screw_mm": float(rng.choice([1.8, 2.0]))}
    return {"kind": kind, "depth_mm": round(float(rng.uniform(1.0, 2.6)), 2),
            "platform_mm": round(min(float(rng.uniform(0.5, 0.7)) * d, d - 1.0), 2), "screw_mm": float(rng.choice([1.6, 1.8, 2.0]))}


def _collar(rng: np.random.Generator, kind: str | None = None) -> dict:
    kind = kind or str(rng.choice(["none", "machined", "microthread", "tulip"], p=[0.4, 0.22, 0.26, 0.12]))
    out = {"kind": kind}
    if kind != "none":
        out["height_mm"] = round(float(rng.uniform(0.4, 2.6 if kind == "tulip" else 2.0)), 2)
    if kind == "microthread":
        out["microthread_pitch_mm"] = round(float(rng.uniform(0.15, 0.4)), 2)
    return out


def _apex(rng: np.random.Generator) -> dict:
    return {"shape": str(rng.choice(["flat", "dome", "cone"])), "hole": str(rng.choice(["none", "none", "round", "oblong"])),
            "flutes": int(rng.choice([0, 0, 2, 3, 4, 6]))}


def _taper(rng: np.random.Generator, d: float, body: str | None = None) -> tuple[float, float]:
    body = body or str(rng.choice(["parallel", "mild", "strong"], p=[0.3, 0.45, 0.25]))
    if body == "parallel":
        return 1.0, round(d * float(rng.uniform(0.95, 1.0)), 2)
    if body == "mild":
        return round(float(rng.uniform(0.3, 0.7)), 2), round(d * float(rng.uniform(0.72, 0.9)), 2)
    return round(float(rng.uniform(0.05, 0.35)), 2), round(d * float(rng.uniform(0.5, 0.72)), 2)


def random_spec(rng: np.random.Generator) -> dict:
    d = round(float(rng.uniform(2.9, 6.0)), 2)
    ts, ad = _taper(rng, d)
    aggressive = ts < 0.4 and rng.random() < 0.35
    pitch = round(float(rng.uniform(1.4, 3.0) if aggressive else rng.uniform(0.55, 1.25)), 2)
    profile = str(rng.choice(PROFILES))
    depth = round(min(d * float(rng.uniform(0.08, 0.18)), 0.2 + 0.25 * pitch, d * 0.3), 2)
    return {
        "length_mm": round(float(rng.uniform(6.0, 18.0)), 1), "diameter_mm": d, "apex_diameter_mm": ad, "taper_start": ts,
        "collar": _collar(rng),
        "thread": {"profile": profile, "pitch_mm": pitch, "depth_mm": max(depth, 0.08),
                   "leads": int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12])), "progressive": bool(rng.random() < 0.2)},
        "apex": _apex(rng),
        "connection": _connection(rng, str(rng.choice(["conical", "internal_hex", "external_hex", "tri_channel"],
                                                       p=[0.5, 0.2, 0.15, 0.15])), d),
    }


def holds_connection(spec: dict) -> bool:
    """Whether a real line could sell this size: its body holds its connection with a wall around it (the demo
    catalog's rule since session 17). Where it does not, the renderer cuts the connection to the body's core and
    draws another system's look (a 22 degree cone in too narrow a body renders as a ~12 degree one). The rule
    lives in ``raiox.synth.catalog``; imported from there, not copied (and not re-exported there: any byte
    changed in ``raiox.synth`` re-renders the evaluation caches)."""
    from raiox.synth.catalog import _holds_connection

    return _holds_connection(spec)


def valid_spec(rng: np.random.Generator) -> dict:
    """The next ``random_spec`` draw that passes the schema (invalid draws are skipped)."""
    from raiox.synth import validate_spec

    while True:
        spec = random_spec(rng)
        try:
            validate_spec(spec)
            return spec
        except Exception:
            continue


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
            s["apex"] = _apex(rng)
        elif aspect == "pitch":
            s["thread"]["pitch_mm"] = round(float(np.clip(s["thread"]["pitch_mm"] * rng.choice([0.67, 0.8, 1.25, 1.5]), 0.4, 3.2)), 2)
        elif aspect == "profile":
            s["thread"]["profile"] = str(rng.choice([p for p in PROFILES if p != base["thread"]["profile"]]))
        elif aspect == "cone_angle":
            s["connection"] = _connection(rng, "conical", d, angle=float(rng.choice(list(CONE_PLATFORM))))
        elif aspect == "connection":
            s["connection"] = _connection(rng, str(rng.choice(["conical", "internal_hex", "external_hex", "tri_channel"])), d)
        elif aspect == "leads":
            s["thread"]["leads"] = int(rng.choice([n for n in (1, 2, 3) if n != base["thread"]["leads"]]))
        elif aspect == "collar":
            s["collar"] = _collar(rng)
        elif aspect == "taper":
            s["taper_start"], s["apex_diameter_mm"] = _taper(rng, d)
        elif aspect == "depth":
            s["thread"]["depth_mm"] = round(max(0.08, min(s["thread"]["depth_mm"] * float(rng.choice([0.6, 1.5])), d * 0.3)), 2)
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


def hard_conditions(name: str, rng: np.random.Generator) -> dict:
    """Evaluation conditions by name: each is hard in one way; 'combined' in all at once."""
    base = {"angulation": float(rng.uniform(0, 6)), "occlusion": 0.0, "noise": float(rng.uniform(0.004, 0.015)),
            "blur": float(rng.uniform(0.3, 0.9))}
    hard = {
        "angulation": {"angulation": float(rng.uniform(8, 15))},
        "noise": {"noise": float(rng.uniform(0.03, 0.05)), "jpeg": int(rng.integers(30, 50))},
        "blur": {"blur": float(rng.uniform(1.6, 2.5))},
        "occlusion": {"occlusion": float(rng.uniform(0.15, 0.3))},
    }
    if name == "combined":
        return {"size": EVAL_SIZE, "angulation": float(rng.uniform(5, 15)), "noise": float(rng.uniform(0.015, 0.035)),
                "blur": float(rng.uniform(0.8, 1.8)), "occlusion": 0.0 if rng.random() < 0.5 else float(rng.uniform(0.1, 0.25))}
    return {"size": EVAL_SIZE, **base, **hard[name]}
