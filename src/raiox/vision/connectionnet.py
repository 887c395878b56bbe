"""Training the connection reader (``raiox.vision.connection``; torch, the ``train`` extra).

Data: one ``render_fixture_crop`` of each of many random systems (look-alike families, never a demo-catalog
design; training conditions, so 85 % carry a cover screw, healing cap, abutment or crown), 200-380 pixels
long like the evaluation's fixtures; two zooms per render, on the ground-truth box and on that box disturbed
the way the shipped localiser errs (``datagen.located_box``). Target: the spec's class in
``connection.CLASSES``. Shards are seeded and resumable; so is training (``trainloop``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import structlog

from raiox.vision.datagen import (load_json, load_npz, located_box, physical_rule, run_shards, save_npz, shard_files,
                                  shard_specs)
from raiox.vision.connection import (CLASSES, ZOOM, Zoom, platform_zoom, spec_class, zoom_metadata,
                                    zoom_of)

log = structlog.get_logger(__name__)
SHARD = 500  # renders per shard


def render_zooms(out: Path, renders: int, seed: int = 0, jobs: int = 1, zoom: Zoom = ZOOM,
                 physical: bool = True) -> int:
    """``renders`` renders in shards of ``SHARD`` to ``out/zooms-*.npz``; missing shards only. ``physical``: only
    systems whose body holds their connection (``datagen.shard_specs``); ``out/meta.json`` records the rule, and
    a folder rendered before it (shards, no meta.json: connection-v1's) resumes the old way."""
    out.mkdir(parents=True, exist_ok=True)
    physical = _zoom_rule(out, physical)
    todo = [s for s in range(0, renders, SHARD) if not (out / f"zooms-{s // SHARD:03d}.npz").exists()]
    run_shards(_render_shard, [(out, s, min(SHARD, renders - s), seed, zoom, physical) for s in todo], jobs)
    return sum(len(load_npz(p, "classes")["classes"]) for p in shard_files(out, "zooms-*.npz"))


def _zoom_rule(out: Path, physical: bool) -> bool:
    """The spec rule of the zooms in ``out``: the recorded one, the old draws for shards made before it was
    recorded, else ``physical`` (recorded now)."""
    meta = out / "meta.json"
    if meta.exists():
        return physical_rule(load_json(meta))
    physical = physical and not shard_files(out, "zooms-*.npz")
    meta.write_text(json.dumps({"physical": physical}))
    return physical


def _render_shard(out: Path, first: int, count: int, seed: int, zoom: Zoom, physical: bool) -> int:
    from raiox.synth import render_fixture_crop
    from raiox.vision.synthbridge import train_conditions

    specs, rng = shard_specs(seed, first, count, physical=physical)
    zooms, classes, t0 = [], [], time.time()
    for spec in specs:
        cls = spec_class(spec)
        height = int(rng.integers(200, 380))
        try:
            sc = render_fixture_crop(spec, seed=int(rng.integers(2**31)), conditions=train_conditions(rng),
                                     size=(height, height // 2))
        except Exception as exc:  # a layout the renderer refuses: skip it
            log.warning("connection.skip", error=str(exc))
            continue
        for box in (sc.boxes[0], located_box(sc.boxes[0], rng)):
            zooms.append((platform_zoom(sc.image, box, zoom) * 255).round().astype(np.uint8))
            classes.append(-1 if cls is None else cls)
    path = out / f"zooms-{first // SHARD:03d}.npz"
    save_npz(path, zooms=np.stack(zooms), classes=np.array(classes, np.int64),
             zoom=np.array([zoom.h, zoom.w, zoom.across, zoom.above]))
    log.info("connection.shard", path=str(path), zooms=len(classes), seconds=round(time.time() - t0, 1))
    return len(classes)


def build_net(zoom: Zoom = ZOOM):
    from torch import nn

    def cbr(cin, cout, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    # (N, 1, h, w) -> strided stem h/2 -> h/4 -> h/8 -> h/16 x w/16 x 128 -> class logits (112 x 80: 7 x 5); the
    # flattened map keeps where things are (a cone's walls against the platform edge)
    return nn.Sequential(*cbr(1, 16, 2), *cbr(16, 24), nn.MaxPool2d(2), *cbr(24, 48), *cbr(48, 48), nn.MaxPool2d(2),
                         *cbr(48, 96), *cbr(96, 96), nn.MaxPool2d(2), *cbr(96, 128), nn.Dropout(0.2), nn.Flatten(),
                         nn.Linear(128 * (zoom.h // 16) * (zoom.w // 16), len(CLASSES)))


def load(data: Path) -> tuple[np.ndarray, np.ndarray, Zoom]:
    """All shards' zooms and classes, and the zoom they were made with (one for all, or an error)."""
    parts = [load_npz(p) for p in shard_files(data, "zooms-*.npz")]
    if not parts:
        raise FileNotFoundError(f"no zooms in {data}: render them first")
    made = {_shard_zoom(p) for p in parts}
    if len(made) > 1:
        raise ValueError(f"the shards in {data} were made with different zooms ({sorted(made)}): render them again")
    return np.concatenate([p["zooms"] for p in parts]), np.concatenate([p["classes"] for p in parts]), made.pop()


def _shard_zoom(part) -> Zoom:
    if "zoom" in part:
        h, w, across, above = part["zoom"].tolist()
        return Zoom(int(h), int(w), float(across), float(above))
    if part["zooms"].shape[1:] == (ZOOM.h, ZOOM.w):  # made before shards carried their zoom (connection-v1's)
        return ZOOM
    raise ValueError("a shard without its zoom: render it again")


TRAINED_FILE = "connection.onnx"  # one trained network; not MODEL_FILE, the name of the shipped reader (an ensemble)


def train_connection(out: Path, steps: int = 5000, batch: int = 64, lr: float = 2e-3, seed: int = 0, threads: int = 1,
                   checkpoint_every_s: float = 180.0) -> Path:
    """Train on ``out/zooms`` (resumable from ``out/connection-ckpt.pt``); writes ``out/TRAINED_FILE``, the zoom
    of its shards in its metadata."""
    import torch
    from torch.nn import functional as F

    from raiox.vision.trainloop import Loop, run

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    zooms, classes, zoom = load(out / "zooms")
    targets = torch.from_numpy(classes)
    val = (np.arange(len(zooms)) // 2) % 25 == 0  # both zooms of every 25th render
    train_idx, val_idx = np.nonzero(~val & (classes >= 0))[0], np.nonzero(val & (classes >= 0))[0]
    net = build_net(zoom)

    def batch_loss(net, gen):
        pick = train_idx[torch.randint(0, len(train_idx), (batch,), generator=gen).numpy()]
        x = torch.from_numpy(zooms[pick]).float().div_(255)[:, None]
        x = torch.where(torch.rand(batch, 1, 1, 1, generator=gen) < 0.5, x.flip(3), x)  # mirror across the axis
        x = x.clamp(1e-4, 1) ** torch.exp(torch.randn(batch, 1, 1, 1, generator=gen) * 0.2)
        x = (x + torch.randn(x.shape, generator=gen) * 0.03 * torch.rand(batch, 1, 1, 1, generator=gen)).clamp(0, 1)
        return F.cross_entropy(net(x), targets[pick], label_smoothing=0.05)

    def checkpoint(net, step, losses, state):
        state["history"].append({"step": step, "loss": float(np.mean(losses[-100:])) if losses else None,
                                 **accuracy(net, zooms[val_idx], classes[val_idx])})
        log.info("connection.checkpoint", **state["history"][-1])

    loop = Loop(out / "connection-ckpt.pt", steps, lr, seed, "connection", weight_decay=5e-4,
                checkpoint_every_s=checkpoint_every_s)
    step, _, state = run(loop, net, batch_loss, state={"history": []}, on_checkpoint=checkpoint)
    (out / "connection-train.json").write_text(json.dumps({
        "steps": step, "batch": batch, "lr": lr, "seed": seed, "zooms": int(len(zooms)),
        "held_out": int(len(val_idx)), "zoom": asdict(zoom), "history": state["history"]}, indent=2))
    return export_connection(net, out / TRAINED_FILE, zoom)


def accuracy(net, zooms: np.ndarray, classes: np.ndarray) -> dict:
    """Held-out accuracy: the class, the connection kind (conical any angle), the angle of conical ones."""
    import torch

    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(zooms[i:i + 256]).float().div_(255)[:, None]).argmax(1)
                          for i in range(0, len(zooms), 256)]).numpy()
    kind = lambda c: np.minimum(c, 3)  # noqa: E731
    conical = classes >= 3
    return {"class_acc": round(float((pred == classes).mean()), 4),
            "kind_acc": round(float((kind(pred) == kind(classes)).mean()), 4),
            "cone_acc": round(float((pred[conical] == classes[conical]).mean()), 4) if conical.any() else None}


def export_connection(net, path: Path, zoom: Zoom = ZOOM) -> Path:
    """The network to ONNX, its zoom stored in the file's metadata (``connection.zoom_of`` reads it back)."""
    import torch

    from raiox.vision.export import export_checked

    return export_checked(net, torch.rand(3, 1, zoom.h, zoom.w), path, "zoom", zoom_metadata(zoom), "connection model")


def ensemble(models: list[Path], out: Path) -> Path:
    """One connection model out of several trained on the same zoom: its ``logits`` are the log of their mean
    probabilities (``connection.predict``'s softmax gives that mean back), so the product reads it like any one
    model. The zoom goes into the new file's metadata."""
    import onnx
    from onnx import TensorProto, compose, helper

    zooms = {zoom_of(Path(m)) for m in models}
    if len(zooms) != 1 or len(models) < 2:
        raise ValueError(f"an ensemble needs two or more models of one zoom (got {len(models)}, zooms {list(zooms)})")
    nodes, inits, probs, source = [], [], [], None
    for k, path in enumerate(models):
        source = onnx.load(str(path))
        graph = compose.add_prefix(source, prefix=f"m{k}/").graph
        inner, logits = graph.input[0].name, graph.output[0].name
        for node in graph.node:
            node.input[:] = ["zoom" if name == inner else name for name in node.input]
        nodes += list(graph.node) + [helper.make_node("Softmax", [logits], [f"m{k}/p"], axis=1)]
        inits += list(graph.initializer)
        probs.append(f"m{k}/p")
    inits.append(helper.make_tensor("share", TensorProto.FLOAT, [], [1.0 / len(models)]))
    nodes += [helper.make_node("Sum", probs, ["psum"]), helper.make_node("Mul", ["psum", "share"], ["pmean"]),
              helper.make_node("Log", ["pmean"], ["logits"])]
    graph = helper.make_graph(nodes, "connection_ensemble", [source.graph.input[0]],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])], inits)
    model = helper.make_model(graph, opset_imports=source.opset_import)
    for key, value in zoom_metadata(zooms.pop()).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out
