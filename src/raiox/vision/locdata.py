"""Located training crops: the embedder's training systems in whole scenes, cropped where the shipped localiser
finds them (``raiox vision render-located``).

A crop made from a ground-truth box with small errors (``render-data``) is not what the product embeds: its boxes
come from the localiser, ends model included, and their errors come with their causes (an abutment taken for the
platform, an occluder, a neighbour). Scenes of 1-3 systems of a rendered dataset (its validation systems left out)
are drawn under the evaluation's conditions or the broad training ones, restorations included, located, matched
to the truth (IoU >= 0.5) and cropped from the located box; the label is the system's class in that dataset.
Shards ``data/shard-loc###.npz`` (seeded by ``(seed, shard, scene)``, resumable) sit next to the dataset's own, so
``raiox vision train`` reads them; ``--located-copies`` weighs them up.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import structlog

from raiox.vision.canonical import CROP_H, CROP_W, canonical_crop
from raiox.vision.datagen import dataset_specs, load_json, load_npz, run_shards, save_npz, shard_files
from raiox.vision.train import VALIDATION_EVERY  # the training's held-out systems never appear here

log = structlog.get_logger(__name__)
SCENES = 100  # scenes per shard


def render_located(data: Path, scenes: int, seed: int = 0, jobs: int = 1) -> int:
    """``scenes`` scenes in shards of ``SCENES`` to ``data/shard-loc###.npz``; missing shards only. Returns the
    located crops in all of them."""
    if not (data / "meta.json").exists():
        raise FileNotFoundError(f"no dataset in {data}: run `raiox vision render-data` first")
    todo = [k for k in range(-(-scenes // SCENES)) if not (data / f"shard-loc{k:03d}.npz").exists()]
    run_shards(_render_shard, [(data, k, min(SCENES, scenes - k * SCENES), seed) for k in todo], jobs)
    return sum(len(load_npz(p, "labels")["labels"]) for p in shard_files(data, "shard-loc*.npz"))


@lru_cache(maxsize=2)
def _specs(data: Path) -> list[dict]:
    return dataset_specs(data)


def _render_shard(data: Path, shard: int, count: int, seed: int) -> int:
    from raiox.synth import render_scene

    from raiox.vision.detect import locate
    from raiox.vision.conditions import EVAL_SIZE, hard_conditions
    from raiox.vision.evaluate import CONDITIONS, match
    from raiox.vision.synthbridge import train_conditions

    specs = _specs(data)
    # older data: the default
    crop = tuple(load_json(data / "meta.json").get("crop") or (CROP_H, CROP_W))
    pool = [c for c in range(len(specs)) if c % VALIDATION_EVERY]
    t0, crops, labels = time.time(), [], []
    for s in range(count):
        rng = np.random.default_rng([seed, shard, s])
        n = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        members = [int(c) for c in rng.choice(pool, size=min(n, len(pool)), replace=False)]
        cond = (hard_conditions(str(rng.choice(CONDITIONS)), rng) if rng.random() < 0.5
                else {**train_conditions(rng), "size": EVAL_SIZE})
        try:
            sc = render_scene([specs[c] for c in members], seed=int(rng.integers(2**31)), conditions=cond)
        except Exception as exc:  # a layout the renderer refuses: skip that scene
            log.warning("locdata.skip", error=str(exc))
            continue
        found = locate(sc.image)
        for i, j in match(found, [np.asarray(b) for b in sc.boxes]):
            crops.append((canonical_crop(sc.image, found[i].box, crop) * 255).round().astype(np.uint8))
            labels.append(members[sc.indices[j]])
    path = data / f"shard-loc{shard:03d}.npz"
    save_npz(path, crops=np.stack(crops) if crops else np.zeros((0, *crop), np.uint8),
             labels=np.array(labels, np.int32))
    log.info("locdata.shard", path=str(path), crops=len(labels), seconds=round(time.time() - t0, 1))
    return len(labels)
