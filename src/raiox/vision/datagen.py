"""Pre-render canonical training crops of random (non-catalog) systems to ``.npz`` shards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import structlog

from raiox.vision.canonical import canonical_crop

log = structlog.get_logger(__name__)
FAMILY = 4  # look-alike family size: consecutive class ids share a base design


def jitter_box(box: np.ndarray, rng: np.random.Generator, amount: float = 0.04) -> np.ndarray:
    """The ground-truth box moved a little (size, shift, a degree or two), as a detector returns it."""
    box = np.asarray(box, np.float64)
    centre = box.mean(0)
    across, axis = box[1] - box[0], box[3] - box[0]
    rel = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * (1 + rng.normal(0, amount, 2))
    pts = centre + (rel + rng.normal(0, amount, 2))[:, :1] * across + (rel + rng.normal(0, amount, 2))[:, 1:] * axis
    a = np.deg2rad(rng.normal(0, 1.5))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (centre + (pts - centre) @ rot.T).astype(np.float32)


def render_dataset(out: Path, classes: int, per_class: int, shard_size: int = 100, seed: int = 0) -> int:
    """Render ``classes`` random systems x ``per_class`` crops into ``out/shard-*.npz`` (resumable)."""
    from raiox.synth import demo_catalog, render_fixture_crop, validate_spec, with_size

    from raiox.vision.synthbridge import family, is_demo_like, signature, train_conditions

    out.mkdir(parents=True, exist_ok=True)
    meta = {"classes": classes, "per_class": per_class, "seed": seed, "renderer": "raiox.synth.render_fixture_crop"}
    (out / "meta.json").write_text(json.dumps(meta))
    demo = {signature(s.spec) for s in demo_catalog()}
    total = 0
    for shard in range(0, classes, shard_size):
        path = out / f"shard-{shard // shard_size:03d}.npz"
        if path.exists():
            total += len(np.load(path)["labels"])
            continue
        t0, crops, labels = time.time(), [], []
        rng = np.random.default_rng([seed, shard])
        specs: list[dict] = []
        while len(specs) < min(shard_size, classes - shard):
            for s in family(rng, FAMILY):
                try:
                    validate_spec(s)
                except Exception:
                    continue
                if not is_demo_like(s, demo):
                    specs.append(s)
        for k, spec in enumerate(specs[: min(shard_size, classes - shard)]):
            for j in range(per_class):
                d = float(np.clip(spec["diameter_mm"] + rng.choice([-0.5, -0.3, 0, 0, 0.4, 0.8]), 2.9, 6.0))
                length = float(np.clip(spec["length_mm"] * rng.uniform(0.7, 1.3), 6.0, 18.0))
                sized = with_size(spec, d, length) if j else spec
                try:
                    sc = render_fixture_crop(sized, seed=int(rng.integers(2**31)), conditions=train_conditions(rng))
                except Exception as exc:  # a spec the renderer rejects at some size: skip that render
                    log.warning("datagen.skip", error=str(exc))
                    continue
                box = jitter_box(sc.boxes[0], rng) if rng.random() < 0.8 else sc.boxes[0]
                crops.append((canonical_crop(sc.image, box) * 255).round().astype(np.uint8))
                labels.append(shard + k)
        np.savez_compressed(path, crops=np.stack(crops), labels=np.array(labels, np.int32))
        total += len(labels)
        log.info("datagen.shard", path=str(path), crops=len(labels), seconds=round(time.time() - t0, 1))
    (out / "meta.json").write_text(json.dumps({**meta, "crops": total}))
    return total
