"""The evaluation's hard render conditions, by name.

Evaluation renders (``raiox.vision.evaluate``, ``raiox.vision.loceval``) draw their conditions here;
this module is part of ``renderer_digest``, so an edit re-renders the cached evaluation sets. Keep
training-only draws out of it (``raiox.vision.synthbridge``).
"""

from __future__ import annotations

import numpy as np

EVAL_SIZE = (600, 800)  # evaluation queries: a periapical at half resolution (rendering time)


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
