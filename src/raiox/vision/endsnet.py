"""Training the ends model (``raiox.vision.ends``; torch, the ``train`` extra).

Data: scenes of random systems (never demo-catalog ones) with abutments, crowns, caps, occluders,
noise, blur and angulation; for every fixture, strips along the box the shipped localiser returns
(its real errors) and along ground-truth boxes disturbed the way the localiser errs (platform edge
off by up to ~40 % of the length, apex by ~20 %, width 10 % narrow, a few degrees). Targets: the
fractional rows and columns of the true box in each strip. Shards are seeded and resumable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import structlog

from raiox.vision.datagen import load_npz, redraw_box, run_shards, save_npz, shard_files
from raiox.vision.ends import STRIP_H, STRIP_W, strip

log = structlog.get_logger(__name__)
PERTURBED = 3  # disturbed ground-truth boxes per fixture (besides the localiser's own box)


def disturb(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ground-truth box with the localiser's kind of error (measured on evaluation-like scenes)."""
    platform = float(np.clip(rng.normal(-0.05, 0.2), -0.45, 0.35))
    apex = float(np.clip(rng.normal(-0.04, 0.1), -0.3, 0.2))
    width = float(np.clip(rng.normal(0.96, 0.1), 0.7, 1.25))
    lateral = float(rng.normal(0, 0.04))
    return redraw_box(box, platform, apex, width, lateral, float(rng.normal(0, 2.0)))


def scene_conditions(rng: np.random.Generator, occlusion: float | None = None) -> dict:
    """60 % of scenes under one of the evaluation's hard conditions; with ``occlusion``, that share of
    scenes under the occlusion condition first (a fixture partly under a cone cut or radiopaque object)."""
    from raiox.vision.evaluate import CONDITIONS
    from raiox.vision.conditions import hard_conditions

    if occlusion is not None and rng.random() < occlusion:
        cond = hard_conditions("occlusion", rng)
    else:
        cond = hard_conditions(str(rng.choice(CONDITIONS)), rng) if rng.random() < 0.6 else {}
    cond["size"] = tuple(int(v) for v in rng.choice([(600, 800), (800, 600), (500, 650), (650, 500), (900, 1200)]))
    if rng.random() < 0.45:
        cond["prosthesis"] = str(rng.choice(["crown", "abutment", "healing"]))
    return cond


def render_strips(out: Path, scenes: int, seed: int = 0, shard: int = 50, jobs: int = 1,
                  occlusion: float | None = None) -> int:
    """``scenes`` scenes in shards of ``shard`` to ``out/strips-*.npz``; missing shards only
    (``occlusion``: see ``scene_conditions``)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in range(0, scenes, shard) if not (out / f"strips-{s // shard:03d}.npz").exists()]
    args = [(out, s, min(shard, scenes - s), shard, seed, occlusion) for s in todo]
    run_shards(_render_shard, args, jobs)
    return sum(len(load_npz(p, "targets")["targets"]) for p in shard_files(out, "strips-*.npz"))


def _render_shard(out: Path, first: int, count: int, shard: int, seed: int, occlusion: float | None = None) -> int:
    from raiox.synth import render_scene
    from raiox.vision.evaluate import match
    from raiox.vision.locator import locate_learned
    from raiox.vision.refine import Pyramid
    from raiox.vision.synthbridge import scene_specs

    rng = np.random.default_rng([seed, first])
    strips, targets, t0 = [], [], time.time()
    for _ in range(count):
        specs = scene_specs(rng)
        try:
            sc = render_scene(specs, seed=int(rng.integers(2**31)), conditions=scene_conditions(rng, occlusion))
        except Exception as exc:  # a layout the renderer refuses: skip the scene
            log.warning("ends.skip", error=str(exc))
            continue
        pyr = Pyramid(sc.image)
        found = locate_learned(sc.image, ends=False)
        pairs = match(found, sc.boxes, threshold=0.3)
        boxes = [(found[i].box, sc.boxes[j]) for i, j in pairs]
        boxes += [(disturb(t, rng), t) for t in sc.boxes for _ in range(PERTURBED)]
        for box, truth in boxes:
            s, geom = strip(pyr, box)
            strips.append((s * 255).round().astype(np.uint8))
            targets.append(geom.index(truth))
    path = out / f"strips-{first // shard:03d}.npz"
    save_npz(path, strips=np.stack(strips), targets=np.array(targets, np.float32))
    log.info("ends.shard", path=str(path), strips=len(targets), seconds=round(time.time() - t0, 1))
    return len(targets)


def build_net():
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin, cout, dil=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, (dil, 1), dilation=(dil, 1), bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class EndsNet(nn.Module):
        """(N, 1, 160, 40) strip -> row logits (N, 160), column logits (N, 40)."""

        def __init__(self):
            super().__init__()
            self.full = nn.Sequential(conv(1, 8), conv(8, 8))
            self.mid = nn.Sequential(nn.MaxPool2d((1, 2)), conv(8, 16), conv(16, 16, 2))
            self.quarter = nn.Sequential(nn.MaxPool2d((1, 2)), conv(16, 24, 4), conv(24, 24, 8))
            self.rows = nn.Sequential(nn.Conv1d(24, 24, 5, padding=2), nn.ReLU(inplace=True), nn.Conv1d(24, 1, 1))
            self.mix = nn.Sequential(nn.Conv2d(24 + 8, 16, 1), nn.ReLU(inplace=True))
            self.cols = nn.Sequential(nn.Conv1d(16, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv1d(16, 1, 1))

        def forward(self, x):
            a = self.full(x)
            c = self.quarter(self.mid(a))
            rows = self.rows(c.mean(3)).squeeze(1)
            wide = self.mix(torch.cat([F.interpolate(c, size=a.shape[2:], mode="nearest"), a], 1))
            w = torch.sigmoid(rows.detach())[:, None, :, None]  # read the width on the fixture's rows only
            cols = self.cols((wide * w).sum(2) / (w.sum(2) + 1e-3)).squeeze(1)
            return rows, cols

    return EndsNet()


def masks(targets, h: int = STRIP_H, w: int = STRIP_W):
    """Row and column 0/1 targets from fractional (first row, last row, first col, last col)."""
    import torch

    r, c = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    rows = ((r[None] >= targets[:, :1]) & (r[None] <= targets[:, 1:2])).float()
    cols = ((c[None] >= targets[:, 2:3]) & (c[None] <= targets[:, 3:4])).float()
    return rows, cols


def train_ends(out: Path, steps: int = 2000, batch: int = 64, lr: float = 3e-3, seed: int = 0, threads: int = 1,
               checkpoint_every_s: float = 180.0) -> Path:
    """Train on ``out/strips`` (resumable from ``out/ends-ckpt.pt``); writes ``out/ends-v1.onnx``."""
    import torch
    from torch.nn import functional as F

    from raiox.vision.trainloop import Loop, run

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    parts = [load_npz(p, "strips", "targets") for p in shard_files(out / "strips", "strips-*.npz")]
    if not parts:
        raise FileNotFoundError(f"no strips in {out / 'strips'}: render them first")
    strips = np.concatenate([p["strips"] for p in parts])
    targets = torch.from_numpy(np.concatenate([p["targets"] for p in parts]))
    val = np.arange(len(strips)) % 20 == 0
    train_idx, val_idx = np.nonzero(~val)[0], np.nonzero(val)[0]
    net = build_net()

    def batch_loss(net, gen):
        pick = train_idx[torch.randint(0, len(train_idx), (batch,), generator=gen).numpy()]
        x = torch.from_numpy(strips[pick]).float().div_(255)[:, None]
        t = targets[pick].clone()
        flip = torch.rand(batch, generator=gen) < 0.5  # mirror across the axis
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        t[flip, 2], t[flip, 3] = STRIP_W - 1 - t[flip, 3], STRIP_W - 1 - t[flip, 2]
        x = x.clamp(0, 1) ** torch.exp((torch.rand(batch, 1, 1, 1, generator=gen) - 0.5) * 0.6)
        x = x + torch.randn(x.shape, generator=gen) * torch.rand(batch, 1, 1, 1, generator=gen) * 0.03
        rows, cols = net(x)
        want_r, want_c = masks(t)
        return F.binary_cross_entropy_with_logits(rows, want_r) + F.binary_cross_entropy_with_logits(cols, want_c)

    def checkpoint(net, step, losses, state):
        state["history"].append({"step": step, "loss": float(np.mean(losses[-100:])) if losses else None,
                                 **errors(net, strips, targets, val_idx)})
        log.info("ends.checkpoint", **state["history"][-1])

    loop = Loop(out / "ends-ckpt.pt", steps, lr, seed, "ends", checkpoint_every_s=checkpoint_every_s)
    step, _, state = run(loop, net, batch_loss, state={"history": []}, on_checkpoint=checkpoint)
    (out / "ends-train.json").write_text(json.dumps({"steps": step, "batch": batch, "lr": lr, "seed": seed,
                                                     "strips": int(len(strips)), "history": state["history"]},
                                                    indent=2))
    return export_ends(net, out / "ends-v1.onnx")


def errors(net, strips, targets, idx) -> dict:
    """Median absolute error of the decoded ends and width on held-out strips, as fractions of the
    true length and width, and the same for the input boxes (the strip's own box)."""
    import torch

    from raiox.vision.ends import REACH_S, REACH_T, run_of

    net.eval()
    with torch.no_grad():
        rows, cols = net(torch.from_numpy(strips[idx]).float().div_(255)[:, None])
    t = targets[idx].numpy()
    length, width = t[:, 1] - t[:, 0], t[:, 3] - t[:, 2]
    box_r = np.array([REACH_T, 1 + REACH_T]) / (1 + 2 * REACH_T) * (STRIP_H - 1)  # the input box's own rows
    box_c = np.array([0.5 - 0.5 / (2 * REACH_S), 0.5 + 0.5 / (2 * REACH_S)]) * (STRIP_W - 1)
    got = [(run_of(r, STRIP_H // 10) or box_r, run_of(c, 3) or box_c) for r, c in zip(rows.numpy(), cols.numpy())]
    top = np.array([g[0][0] for g in got]) - t[:, 0]
    apex = np.array([g[0][1] for g in got]) - t[:, 1]
    wid = np.array([g[1][1] - g[1][0] for g in got]) - width
    return {"platform_err": round(float(np.median(np.abs(top) / length)), 4),
            "apex_err": round(float(np.median(np.abs(apex) / length)), 4),
            "width_err": round(float(np.median(np.abs(wid) / width)), 4),
            "platform_err_input": round(float(np.median(np.abs(box_r[0] - t[:, 0]) / length)), 4),
            "width_err_input": round(float(np.median(np.abs(box_c[1] - box_c[0] - width) / width)), 4)}


def export_ends(net, path: Path) -> Path:
    import onnxruntime as ort
    import torch

    net.eval()
    probe = torch.rand(3, 1, STRIP_H, STRIP_W)
    torch.onnx.export(net, probe, str(path), input_names=["strip"], output_names=["rows", "cols"],
                      dynamic_axes={"strip": {0: "N"}, "rows": {0: "N"}, "cols": {0: "N"}}, opset_version=17,
                      dynamo=False)
    with torch.no_grad():
        want = [v.numpy() for v in net(probe)]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"strip": probe.numpy()})
    if not all(np.allclose(a, b, atol=1e-4) for a, b in zip(want, got)):
        raise RuntimeError("ONNX export of the ends model differs from torch")
    return path
