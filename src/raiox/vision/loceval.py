"""`raiox vision eval-locator`: localisation on scenes of random (non-catalog) systems under the
evaluation's hard conditions, a check for choosing localiser weights and post-processing without
touching the demo-catalog evaluation set (`raiox vision eval`).

Scenes are seeded per (seed, condition, index) and cached in one ``.npz``; a cache made with another
seed or count, or by another renderer (``raiox.vision.evaluate.renderer_digest``), is rendered again.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from raiox.vision.datagen import UnreadableData, load_npz, save_npz
from raiox.vision.evaluate import CONDITIONS, loc_rates, match, renderer_digest

NAMES = (*CONDITIONS, "multi")  # the evaluation's hard conditions, and multi-implant scenes


def _digest() -> str:
    """The renderer's digest with the random spec draws these scenes are made of."""
    return renderer_digest("raiox.vision.specdraw")


def scenes(per: int, seed: int, cache: Path | None = None) -> tuple[list, list, list]:
    """``per`` scenes per condition (multi: 2-3 fixtures under 'combined'): images, boxes, conditions."""
    from raiox.synth import render_scene
    from raiox.vision.conditions import hard_conditions
    from raiox.vision.specdraw import valid_spec

    try:  # a damaged cache is rendered again, like a stale one
        d = load_npz(cache, allow_pickle=True) if cache is not None and cache.exists() else None
    except UnreadableData:
        d = None
    if d is not None:
        made_by = str(d["renderer"]) if "renderer" in d else None
        if int(d["per"]) == per and int(d["seed"]) == seed and made_by == _digest():
            return [i.astype(np.float32) / 65535 for i in d["images"]], list(d["boxes"]), [str(c) for c in d["conds"]]
    images, boxes, conds = [], [], []
    for ci, name in enumerate(NAMES):
        for k in range(per):
            rng = np.random.default_rng([seed, ci, k])
            n = int(rng.integers(2, 4)) if name == "multi" else 1
            sc = render_scene([valid_spec(rng) for _ in range(n)], seed=int(rng.integers(2**31)),
                              conditions=hard_conditions("combined" if name == "multi" else name, rng))
            images.append(sc.image), boxes.append(np.stack(sc.boxes)), conds.append(name)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        stored = np.empty(len(images), object)
        stored[:] = [(i * 65535).round().astype(np.uint16) for i in images]
        packed = np.empty(len(boxes), object)
        packed[:] = boxes
        save_npz(cache, images=stored, boxes=packed, conds=np.array(conds), per=per, seed=seed,
                 renderer=np.array(_digest()))
    return images, boxes, conds


def evaluate(per: int = 50, seed: int = 9100, model: Path | None = None, cache: Path | None = None) -> dict:
    """Recall, precision, mean IoU of the matched boxes, and recall per condition."""
    from raiox.vision.detect import box_iou
    from raiox.vision.locator import locate_learned

    images, boxes, conds = scenes(per, seed, cache)
    t0, tp, fp, fn, ious, per_cond = time.time(), 0, 0, 0, [], {}
    for image, truth, cond in zip(images, boxes, conds):
        found = locate_learned(image, model)
        pairs = match(found, list(truth))
        ious += [box_iou(found[i].box, truth[j]) for i, j in pairs]
        tp, fp, fn = tp + len(pairs), fp + len(found) - len(pairs), fn + len(truth) - len(pairs)
        hit = per_cond.setdefault(cond, [0, 0])
        hit[0], hit[1] = hit[0] + len(pairs), hit[1] + len(truth)
    rates = loc_rates({"tp": tp, "fp": fp, "fn": fn, "platform_ok": 0})
    return {"recall": rates["recall"], "precision": rates["precision"], "tp": tp, "fp": fp, "fn": fn,
            "mean_iou": float(np.mean(ious)) if ious else 0.0, "seconds": time.time() - t0,
            "per_condition": {c: h[0] / max(h[1], 1) for c, h in per_cond.items()}}


def summary(res: dict) -> str:
    conds = ", ".join(f"{c} {r:.1%}" for c, r in res["per_condition"].items())
    return (f"recall {res['recall']:.1%}, precision {res['precision']:.1%} (tp {res['tp']}, fp {res['fp']}, "
            f"fn {res['fn']}), mean IoU of matches {res['mean_iou']:.3f}; recall by condition: {conds}")
