"""Training the learned localiser (torch; the ``train`` extra): scenes from ``raiox.synth``
with ground-truth boxes -> fixture / platform-end / apex-end maps at half the net input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import structlog

from raiox.vision.datagen import RESUME_HINT, load_checkpoint, load_npz, load_weights, save_npz, shard_files
from raiox.vision.locator import LOC_SIDE, OUT_STRIDE, TRAINED_FILE, net_input

log = structlog.get_logger(__name__)
END_FRACTION = 0.3  # the platform / apex end maps cover this fraction of the fixture length
CANVAS = LOC_SIDE  # training canvases are LOC_SIDE x LOC_SIDE (images padded at random)


def targets(boxes, shape: tuple[int, int], scale: float) -> np.ndarray:
    """(3, h, w) uint8 maps: fixture, platform end, apex end; ``scale`` maps image -> map pixels."""
    h, w = shape
    maps = np.zeros((3, h, w), np.uint8)
    for box in boxes:
        b = (np.asarray(box, np.float64) + 0.5) * scale - 0.5
        p_l, p_r, a_r, a_l = b
        top = np.array([p_l, p_r, p_r + END_FRACTION * (a_r - p_r), p_l + END_FRACTION * (a_l - p_l)])
        bottom = np.array([a_l + END_FRACTION * (p_l - a_l), a_r + END_FRACTION * (p_r - a_r), a_r, a_l])
        for k, poly in enumerate((b, top, bottom)):
            cv2.fillPoly(maps[k], [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    return maps


def render_scenes(out: Path, count: int, seed: int = 0, shard: int = 100, occlusion: float = 0.0,
                  jobs: int = 1, hard: float = 0.0) -> int:
    """Render ``count`` training scenes of random systems (1-3 fixtures), net-input sized, to shards
    (missing shards only; each seeded by ``(seed, first scene)``, so ``jobs`` processes give the same).
    ``occlusion``, ``hard``: see ``scene_conditions``."""
    from raiox.vision.datagen import run_shards

    out.mkdir(parents=True, exist_ok=True)
    todo = [s0 for s0 in range(0, count, shard) if not (out / f"scenes-{s0 // shard:03d}.npz").exists()]
    args = [(out, s0, min(shard, count - s0), shard, seed, occlusion, hard) for s0 in todo]
    run_shards(_render_scene_shard, args, jobs)
    return sum(len(load_npz(p, "maps")["maps"]) for p in shard_files(out, "scenes-*.npz"))


def scene_conditions(rng: np.random.Generator, occlusion: float = 0.0, hard: float = 0.0) -> dict:
    """Render conditions of one training scene. ``occlusion``: share of scenes where one fixture is
    partly covered (10-30 %) by a cone cut or a radiopaque object (on top of ``render_scene``'s own
    15 %); ``hard``: share of scenes under one of the evaluation's hard conditions (noise, blur and
    angulation beyond ``render_scene``'s own ranges), drawn only when ``hard`` > 0 so that scenes of
    the earlier recipe stay as they were."""
    big = rng.choice([(600, 800), (800, 600), (500, 650), (650, 500), (450, 600), (600, 450)])
    cond = {"size": tuple(int(v) for v in big)}
    if rng.random() < 0.3:
        cond["prosthesis"] = str(rng.choice(["crown", "abutment", "healing"]))
    if occlusion and rng.random() < occlusion:
        cond["occlusion"] = float(rng.uniform(0.1, 0.3))
    if hard and rng.random() < hard:
        from raiox.vision.conditions import hard_conditions
        from raiox.vision.evaluate import CONDITIONS

        cond = {**hard_conditions(str(rng.choice(CONDITIONS)), rng), **cond}
    return cond


def _render_scene_shard(out: Path, s0: int, n: int, shard: int, seed: int, occlusion: float, hard: float = 0.0) -> int:
    from raiox.synth import render_scene

    from raiox.vision.synthbridge import scene_specs

    path = out / f"scenes-{s0 // shard:03d}.npz"
    rng = np.random.default_rng([seed, s0])
    imgs, maps = [], []
    t0 = time.time()
    while len(imgs) < n:
        specs = scene_specs(rng)
        cond = scene_conditions(rng, occlusion, hard)
        try:
            sc = render_scene(specs, seed=int(rng.integers(2**31)), conditions=cond)
        except Exception as exc:
            log.warning("locnet.skip", error=str(exc))
            continue
        small, f = net_input(sc.image)
        canvas = np.zeros((CANVAS, CANVAS), np.float32)
        target = np.zeros((3, CANVAS // OUT_STRIDE, CANVAS // OUT_STRIDE), np.uint8)
        h, w = small.shape
        oy, ox = int(rng.integers(0, CANVAS - h + 1)) // 8 * 8, int(rng.integers(0, CANVAS - w + 1)) // 8 * 8
        canvas[oy : oy + h, ox : ox + w] = small
        shifted = [np.asarray(b) * f + [ox, oy] for b in sc.boxes]
        target[:] = targets(shifted, target.shape[1:], 1 / OUT_STRIDE)
        imgs.append((canvas * 255).round().astype(np.uint8))
        maps.append(target)
    save_npz(path, images=np.stack(imgs), maps=np.stack(maps))
    log.info("locnet.shard", path=str(path), scenes=len(imgs), seconds=round(time.time() - t0, 1))
    return len(imgs)


def build_net(width: float = 1):
    """The localiser: ``width`` 1 is 8/16/24 channels (the first locator-v1); 1.5 is 12/24/36; 2 (locator-v1 and
    locator-v2, shipped) is 16/32/48."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(cin, cout, stride=1, dil=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dil, dilation=dil, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class LocNet(nn.Module):
        def __init__(self):
            super().__init__()
            a, b, c = (int(round(n * width)) for n in (8, 16, 24))
            self.s1 = nn.Sequential(conv(1, a, 2), conv(a, a))  # 1/2
            self.s2 = nn.Sequential(conv(a, b, 2), conv(b, b))  # 1/4
            self.s3 = nn.Sequential(conv(b, c, 2), conv(c, c, dil=2), conv(c, c, dil=4))  # 1/8, wide context
            self.u2 = nn.Sequential(nn.Conv2d(c + b, b, 1), nn.ReLU(inplace=True))
            self.u1 = nn.Sequential(nn.Conv2d(b + a, a, 1), nn.ReLU(inplace=True), conv(a, a))
            self.head = nn.Conv2d(a, 3, 1)

        def forward(self, x):
            a = self.s1(x)
            b = self.s2(a)
            c = self.s3(b)
            b = self.u2(torch.cat([F.interpolate(c, size=b.shape[2:], mode="nearest"), b], 1))
            a = self.u1(torch.cat([F.interpolate(b, size=a.shape[2:], mode="nearest"), a], 1))
            return self.head(a)

    return LocNet()


def train_locator(out: Path, steps: int = 600, batch: int = 12, lr: float = 3e-3, seed: int = 0, threads: int = 1,
                  checkpoint_every_s: float = 180.0, warm_start: Path | None = None, width: float = 1) -> Path:
    import torch
    from torch.nn import functional as F

    from raiox.vision.trainloop import Loop, run

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    parts = [load_npz(p, "images", "maps") for p in shard_files(out / "scenes", "scenes-*.npz")]
    images = np.concatenate([p["images"] for p in parts])
    maps = np.concatenate([p["maps"] for p in parts])
    loop = Loop(out / "locator-ckpt.pt", steps, lr, seed, "locnet", checkpoint_every_s=checkpoint_every_s)
    if loop.ckpt.exists():  # a resumed run keeps its network
        width = load_checkpoint(loop.ckpt, "net", hint=RESUME_HINT).get("width", 1)
    net = build_net(width)
    if warm_start is not None and not loop.ckpt.exists():  # a new schedule from earlier weights
        load_weights(net, load_checkpoint(warm_start, "net")["net"], warm_start)
    pos_weight = torch.tensor([3.0, 4.0, 4.0]).view(1, 3, 1, 1)

    def batch_loss(net, gen):
        pick = torch.randint(0, len(images), (batch,), generator=gen).numpy()
        x = torch.from_numpy(images[pick]).float().div_(255)[:, None]
        y = torch.from_numpy(maps[pick]).float()
        if torch.rand(1, generator=gen) < 0.5:
            x, y = x.flip(3), y.flip(3)
        k = int(torch.randint(0, 4, (1,), generator=gen))
        x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
        x = (x.clamp(0, 1) ** torch.exp((torch.rand(batch, 1, 1, 1, generator=gen) - 0.5) * 0.6))
        return F.binary_cross_entropy_with_logits(net(x), y, pos_weight=pos_weight)

    step, losses, _ = run(loop, net, batch_loss, state={"width": width})
    final = float(np.mean(losses[-100:])) if losses else None
    (out / "locator-train.json").write_text(json.dumps({"steps": step, "batch": batch, "lr": lr, "seed": seed,
                                                        "scenes": int(len(images)), "width": width,
                                                        "final_loss": final}))
    return export_locator(net, out)


def export_locator(net, out: Path) -> Path:
    """Write ``out/locator.onnx`` (``locator.TRAINED_FILE``; dynamic image size); ``net`` None loads the last
    checkpoint."""
    import torch

    if net is None:
        saved = load_checkpoint(out / "locator-ckpt.pt", "net", hint=RESUME_HINT)
        net = build_net(saved.get("width", 1))
        load_weights(net, saved["net"], out / "locator-ckpt.pt")
    path = out / TRAINED_FILE
    net.eval()
    torch.onnx.export(net, torch.zeros(1, 1, 192, 256), str(path), input_names=["image"], output_names=["maps"],
                      dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "maps": {0: "N", 2: "h", 3: "w"}},
                      opset_version=17, dynamo=False)
    return path
