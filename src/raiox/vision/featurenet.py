"""Training the design-feature reader (``raiox vision train-features``; serving: ``raiox.vision.features``).

The reader is fitted on one embedder's frozen vectors: every crop of a rendered training set (``render-data``
and ``render-located`` shards) is embedded once (cached per shard under ``OUT/vectors``, so a rerun resumes),
then a small MLP (512 -> 512 -> one softmax per feature of ``features.READ``) learns the features the
training systems' specs name (``raiox.vision.attributes``). Every ``VALIDATION_EVERY``-th system is held out,
as the embedder's own training holds them out, and the card reports each feature's accuracy on them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from raiox.kit.logging import get_logger
from raiox.vision.attributes import HEADS, attribute_table
from raiox.vision.datagen import load_json, load_npz, save_npz, shard_files
from raiox.vision.features import READ, metadata
from raiox.vision.train import VALIDATION_EVERY

log = get_logger(__name__)
HIDDEN = 512


def embed_shards(data: Path, out: Path, embedder, shards: int | None = None, located: int | None = None,
                 progress=None) -> list[Path]:
    """The vectors of the first ``shards`` crop shards and ``located`` located shards of ``data`` (all when
    None), one ``.npz`` per shard in ``out`` (``v`` float16, ``labels``); shards already embedded are kept."""
    plain = [p for p in shard_files(data, "shard-*.npz") if not p.name.startswith("shard-loc")]
    loc = shard_files(data, "shard-loc*.npz")
    todo = plain[:shards] + loc[:located]
    if not todo:
        raise FileNotFoundError(f"no training shards in {data}: run `raiox vision render-data` first")
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for path in todo:
        target = out / path.name
        if not target.exists():
            part = load_npz(path, "crops", "labels")
            vectors = embedder.embed([c.astype(np.float32) / 255 for c in part["crops"]])
            save_npz(target, v=vectors.astype(np.float16), labels=part["labels"])
        done.append(target)
        if progress:
            progress()
    return done


def build_net(sizes: tuple[int, ...]):
    import torch.nn as nn
    from torch.nn import functional as F

    class FeatureNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(512, HIDDEN), nn.ReLU(), nn.Dropout(0.2), nn.Linear(HIDDEN, sum(sizes)))

        def forward(self, embedding):
            return self.mlp(F.normalize(embedding, dim=1))

    return FeatureNet()


def fit(vector_files: list[Path], data: Path, steps: int = 6000, batch: int = 512, lr: float = 2e-3,
        seed: int = 0, threads: int = 1) -> tuple[object, dict]:
    """The MLP fitted on the vectors (targets from ``data``'s specs) and its held-out accuracy per feature."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    parts = [load_npz(p, "v", "labels") for p in vector_files]
    vectors = np.concatenate([p["v"] for p in parts]).astype(np.float32)
    labels = np.concatenate([p["labels"] for p in parts]).astype(np.int64)
    columns = [list(HEADS).index(name) for name in READ]
    targets = attribute_table(data)[labels][:, columns]
    held = labels % VALIDATION_EVERY == 0
    x, y = torch.from_numpy(vectors[~held]), torch.from_numpy(targets[~held])
    sizes = tuple(len(HEADS[name][0]) for name in READ)
    net = build_net(sizes)
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        net.train()
        pick = torch.randint(0, len(x), (batch,), generator=gen)
        logits = torch.split(net(x[pick]), sizes, dim=1)
        loss = torch.stack([F.cross_entropy(out, y[pick, h], ignore_index=-1) for h, out in enumerate(logits)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    report = {"vectors": int(len(vectors)), "held_out": int(held.sum()), "steps": steps, "loss": round(float(loss), 4),
              "accuracy": accuracy(net, vectors[held], targets[held], sizes)}
    return net, report


def accuracy(net, vectors: np.ndarray, targets: np.ndarray, sizes: tuple[int, ...]) -> dict[str, float | None]:
    """Each feature's accuracy (argmax) on the vectors whose spec names it."""
    import torch

    net.eval()
    with torch.no_grad():
        logits = torch.split(net(torch.from_numpy(vectors)), sizes, dim=1)
    out = {}
    for h, (name, part) in enumerate(zip(READ, logits)):
        known = targets[:, h] >= 0
        out[name] = (round(float((part.argmax(1).numpy()[known] == targets[known, h]).mean()), 4) if known.any()
                     else None)
    return out


def export(net, path: Path, embedder_id: str) -> Path:
    """The network to ONNX (input ``embedding`` (N, 512), output ``logits``), with the embedder it reads and the
    features of its columns in the file's metadata (``features.read`` checks both)."""
    import torch

    from raiox.vision.export import export_checked

    return export_checked(net, torch.randn(3, 512), path, "embedding", metadata(embedder_id), "feature model")


def write_card(path: Path, embedder_id: str, data: Path, report: dict, seconds: float) -> Path:
    """A model card next to the ONNX file."""
    meta_file = data / "meta.json"
    meta = load_json(meta_file) if meta_file.exists() else {}
    acc = ", ".join(f"{name} {value:.3f}" for name, value in report["accuracy"].items() if value is not None)
    card = path.with_suffix(".md")
    card.write_text("\n".join([
        f"# Model card: {path.stem}", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; file `{path.name}`, "
        f"{path.stat().st_size / 1e6:.1f} MB.",
        "- Task: read a fixture's design features (" + ", ".join(READ) + ") from its embedding, to re-rank catalog "
        "candidates by what their specs name (`raiox.vision.features`).",
        f"- Reads the vectors of `{embedder_id}` only (ONNX metadata `raiox_embedder`). Input `embedding` (N, 512) "
        "float32; output `logits` (N, classes of every feature, `raiox.vision.attributes.HEADS` order, features in "
        "metadata `raiox_heads` order).",
        f"- Network: an MLP on the normalised embedding (512 -> {HIDDEN}, ReLU, dropout 0.2 -> "
        "one softmax per feature).",
        f"- Data: {report['vectors']} vectors of the crops in `{data}` ({meta.get('classes', '?')} random training "
        "systems, `render-data` and `render-located` shards; no demo-catalog system); every "
        f"{VALIDATION_EVERY}th system held out ({report['held_out']} vectors).",
        f"- Training: {report['steps']} steps, batch 512, AdamW (one-cycle, peak lr 2e-3); {seconds / 60:.1f} min "
        f"including embedding. Final loss {report['loss']}.",
        f"- Held-out accuracy: {acc}.",
        "- Evaluation: docs/benchmarks.md (Vision section; session-27 note).", "",
    ]))
    return card


def train_features(data: Path, out: Path, embedder, shards: int | None = None, located: int | None = None,
                   steps: int = 6000, seed: int = 0, threads: int = 1, name: str = "features",
                   progress=None) -> tuple[Path, dict]:
    """Embed, fit, export and write the card: ``OUT/NAME.onnx``."""
    t0 = time.time()
    files = embed_shards(data, out / "vectors", embedder, shards, located, progress)
    net, report = fit(files, data, steps=steps, seed=seed, threads=threads)
    path = export(net, out / f"{name}.onnx", embedder.model_id)
    write_card(path, embedder.model_id, data, report, time.time() - t0)
    log.info("features.trained", path=str(path), **report["accuracy"])
    return path, report
