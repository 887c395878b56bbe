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


def run_shards(render, args: list[tuple], jobs: int = 1) -> list:
    """``render(*a)`` for every ``a`` in ``args`` (one shard each), in ``jobs`` processes when > 1."""
    if jobs > 1 and len(args) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(render, *zip(*args)))
    return [render(*a) for a in args]


def render_dataset(out: Path, classes: int, per_class: int, shard_size: int = 100, seed: int = 0, jobs: int = 1,
                   size: tuple[int, int] = (288, 144)) -> int:
    """Render ``classes`` random systems x ``per_class`` crops into ``out/shard-*.npz`` (resumable).

    Shards are independent (each seeded by ``(seed, first class)``), so ``jobs`` processes render
    them in parallel and a rerun only renders the shards that are missing.
    """
    out.mkdir(parents=True, exist_ok=True)
    meta = {"classes": classes, "per_class": per_class, "seed": seed, "size": list(size),
            "renderer": "raiox.synth.render_fixture_crop"}
    (out / "meta.json").write_text(json.dumps(meta))
    todo = [s for s in range(0, classes, shard_size) if not (out / f"shard-{s // shard_size:03d}.npz").exists()]
    args = [(out, s, min(shard_size, classes - s), shard_size, per_class, seed, tuple(size)) for s in todo]
    run_shards(_render_shard, args, jobs)
    total = sum(len(np.load(p)["labels"]) for p in sorted(out.glob("shard-*.npz")))
    (out / "meta.json").write_text(json.dumps({**meta, "crops": total}))
    return total


def _render_shard(out: Path, first: int, count: int, shard_size: int, per_class: int, seed: int,
                  size: tuple[int, int]) -> int:
    """One shard: ``count`` systems (labels ``first..first+count-1``) x ``per_class`` crops."""
    from raiox.synth import demo_catalog, render_fixture_crop, validate_spec, with_size

    from raiox.vision.synthbridge import family, is_demo_like, signature, train_conditions

    demo = {signature(s.spec) for s in demo_catalog()}
    path = out / f"shard-{first // shard_size:03d}.npz"
    t0, crops, labels = time.time(), [], []
    rng = np.random.default_rng([seed, first])
    specs: list[dict] = []
    while len(specs) < count:
        for s in family(rng, FAMILY):
            try:
                validate_spec(s)
            except Exception:
                continue
            if not is_demo_like(s, demo):
                specs.append(s)
    for k, spec in enumerate(specs[:count]):
        for j in range(per_class):
            d = float(np.clip(spec["diameter_mm"] + rng.choice([-0.5, -0.3, 0, 0, 0.4, 0.8]), 2.9, 6.0))
            length = float(np.clip(spec["length_mm"] * rng.uniform(0.7, 1.3), 6.0, 18.0))
            sized = with_size(spec, d, length) if j else spec
            try:
                sc = render_fixture_crop(sized, seed=int(rng.integers(2**31)), conditions=train_conditions(rng), size=size)
            except Exception as exc:  # a spec the renderer rejects at some size: skip that render
                log.warning("datagen.skip", error=str(exc))
                continue
            box = jitter_box(sc.boxes[0], rng) if rng.random() < 0.8 else sc.boxes[0]
            crops.append((canonical_crop(sc.image, box) * 255).round().astype(np.uint8))
            labels.append(first + k)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, crops=np.stack(crops), labels=np.array(labels, np.int32))
    tmp.replace(path)
    log.info("datagen.shard", path=str(path), crops=len(labels), seconds=round(time.time() - t0, 1))
    return len(labels)
