"""Random implant specs drawn from the schema's realistic ranges.

Shared by training (``synthbridge``'s look-alike families and scenes) and the localiser's evaluation
scenes (``raiox.vision.loceval``), whose cached renders are stale when a draw here changes: this
module is part of their ``renderer_digest``.
"""

from __future__ import annotations

import numpy as np

CONE_PLATFORM = {8.0: 2.8, 11.0: 2.1, 11.5: 2.5, 16.0: 3.0, 22.0: 3.8, 24.0: 2.95}
PROFILES = ("v", "square", "buttress", "reverse_buttress", "knife")


def draw_connection(rng: np.random.Generator, kind: str, d: float, angle: float | None = None) -> dict:
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


def draw_collar(rng: np.random.Generator, kind: str | None = None) -> dict:
    kind = kind or str(rng.choice(["none", "machined", "microthread", "tulip"], p=[0.4, 0.22, 0.26, 0.12]))
    out = {"kind": kind}
    if kind != "none":
        out["height_mm"] = round(float(rng.uniform(0.4, 2.6 if kind == "tulip" else 2.0)), 2)
    if kind == "microthread":
        out["microthread_pitch_mm"] = round(float(rng.uniform(0.15, 0.4)), 2)
    return out


def draw_apex(rng: np.random.Generator) -> dict:
    return {"shape": str(rng.choice(["flat", "dome", "cone"])), "hole": str(rng.choice(["none", "none", "round", "oblong"])),
            "flutes": int(rng.choice([0, 0, 2, 3, 4, 6]))}


def draw_taper(rng: np.random.Generator, d: float, body: str | None = None) -> tuple[float, float]:
    body = body or str(rng.choice(["parallel", "mild", "strong"], p=[0.3, 0.45, 0.25]))
    if body == "parallel":
        return 1.0, round(d * float(rng.uniform(0.95, 1.0)), 2)
    if body == "mild":
        return round(float(rng.uniform(0.3, 0.7)), 2), round(d * float(rng.uniform(0.72, 0.9)), 2)
    return round(float(rng.uniform(0.05, 0.35)), 2), round(d * float(rng.uniform(0.5, 0.72)), 2)


def random_spec(rng: np.random.Generator) -> dict:
    d = round(float(rng.uniform(2.9, 6.0)), 2)
    ts, ad = draw_taper(rng, d)
    aggressive = ts < 0.4 and rng.random() < 0.35
    pitch = round(float(rng.uniform(1.4, 3.0) if aggressive else rng.uniform(0.55, 1.25)), 2)
    profile = str(rng.choice(PROFILES))
    depth = round(min(d * float(rng.uniform(0.08, 0.18)), 0.2 + 0.25 * pitch, d * 0.3), 2)
    return {
        "length_mm": round(float(rng.uniform(6.0, 18.0)), 1), "diameter_mm": d, "apex_diameter_mm": ad, "taper_start": ts,
        "collar": draw_collar(rng),
        "thread": {"profile": profile, "pitch_mm": pitch, "depth_mm": max(depth, 0.08),
                   "leads": int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12])), "progressive": bool(rng.random() < 0.2)},
        "apex": draw_apex(rng),
        "connection": draw_connection(rng, str(rng.choice(["conical", "internal_hex", "external_hex", "tri_channel"],
                                                       p=[0.5, 0.2, 0.15, 0.15])), d),
    }


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
