"""Metric-learning training of the fixture embedder (torch; the ``train`` extra).

Data: uint8 canonical crops in ``OUT/data/shard-*.npz`` (``crops`` (n, H, W), ``labels`` (n,); H x W is the
net's input size, 192 x 64 or 192 x 96) made by :mod:`raiox.vision.datagen` from random specs (never the demo
catalog systems). A run starts from scratch, from a checkpoint's weights, or from an exported model (``.onnx``).
Training: ArcFace over the training systems (optionally with a classifier per design feature on the embedding,
``attribute_weight``), on-line augmentation, AdamW + cosine schedule.
Checkpoints go to ``OUT/ckpt.pt`` every few minutes; a rerun resumes from there. The result is
``OUT/NAME.onnx`` (mirror-averaged, L2-normalised; NAME ``model_name``, default raiox-v1) and the model card.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import structlog

from raiox.kit.errors import first_line
from raiox.vision.datagen import RESUME_HINT, load_checkpoint, load_json, load_npz, shard_files, state_dict_error

log = structlog.get_logger(__name__)


class ResumeError(ValueError):
    """A rerun asks for something its checkpoint cannot continue (e.g. attribute heads added or dropped); ``option``
    names the `raiox vision train` option at fault."""

    def __init__(self, message: str, option: str = "--attribute-weight"):
        super().__init__(message)
        self.option = option


@dataclass
class TrainConfig:
    out: Path
    steps: int = 6000
    batch: int = 96
    lr: float = 2e-3
    weight_decay: float = 5e-4
    margin: float = 0.3
    scale: float = 30.0
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    checkpoint_every_s: float = 180.0
    # on resume: keep the weights, start a new warm-up + cosine to `steps` (once per target)
    restart_schedule: bool = False
    classes: int = 0  # ArcFace rows; 0 = planned classes from data/meta.json or the largest label + 1
    model_name: str = "raiox-v1"
    init_from: Path | None = None  # a checkpoint whose network weights start a fresh run (fine-tuning)
    attribute_weight: float = 0.0  # > 0: design-feature heads (raiox.vision.attributes) add this x their loss
    located_copies: int = 1  # weight of the located crops (``render-located``) against the others
    bf16: bool = False  # the network's forward pass under bfloat16 autocast (CPUs with AMX / AVX-512 BF16, GPUs)
    widths: tuple[int, ...] = (32, 64, 128)  # the residual blocks' channels (raiox-v1 to v11: 32, 64, 128)
    extra: dict = field(default_factory=dict)


def load_shards(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops, labels, and which crops are located ones (``render-located``'s ``shard-loc*`` shards)."""
    shards = shard_files(data_dir, "shard-*.npz")
    if not shards:
        raise FileNotFoundError(f"no training shards in {data_dir}: run `raiox vision render-data` first")
    parts = [load_npz(s, "crops", "labels") for s in shards]
    located = [np.full(len(p["labels"]), s.name.startswith("shard-loc")) for s, p in zip(shards, parts)]
    return (np.concatenate([p["crops"] for p in parts]), np.concatenate([p["labels"] for p in parts]),
            np.concatenate(located))


def weigh_located(idx: np.ndarray, located: np.ndarray, copies: int) -> np.ndarray:
    """The sample indices ``idx`` with the located crops among them ``copies`` times: drawn that much more often."""
    return np.concatenate([idx, *[idx[located[idx]]] * (copies - 1)]) if copies > 1 else idx


VALIDATION_EVERY = 16  # every 16th training system is held out for validation


def split_classes(labels: np.ndarray, every: int = VALIDATION_EVERY) -> tuple[np.ndarray, np.ndarray]:
    """Hold out every ``every``-th training system for validation (stable as shards are added)."""
    is_val = labels % every == 0
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]


def augment(x, gen):
    """Random mirror, box jitter (affine), gamma, blur, noise and occlusion on a (N, 1, H, W) batch."""
    import torch
    from torch.nn import functional as F

    n, aspect = x.shape[0], x.shape[2] / x.shape[3]
    r = lambda *s: torch.rand(*s, generator=gen, device=x.device)
    x = torch.where(r(n, 1, 1, 1) < 0.5, x.flip(3), x)
    ang = (r(n) - 0.5) * math.radians(8)
    sc = 1 + (r(n) - 0.5) * 0.16
    tx, ty = (r(n) - 0.5) * 0.08, (r(n) - 0.5) * 0.06
    theta = torch.stack([
        torch.stack([torch.cos(ang) * sc, -torch.sin(ang) * sc * aspect, tx], 1),
        torch.stack([torch.sin(ang) * sc / aspect, torch.cos(ang) * sc, ty], 1),
    ], 1)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    x = x.clamp(0, 1) ** torch.exp((r(n, 1, 1, 1) - 0.5) * 0.8)
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device) / 16
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    x = torch.where(r(n, 1, 1, 1) < 0.3, blurred, x)
    x = x + torch.randn(x.shape, generator=gen, device=x.device) * r(n, 1, 1, 1) * 0.05
    return occlude(x.clamp(0, 1), gen).clamp(0, 1)


def occlude(x, gen, p: float = 0.3):
    """Cover part of a fixture in a fraction ``p`` of the batch, as radiographs do: a band across the
    crop (a cone cut, white, or a grey strip) or a tilted ellipse (a neighbouring crown or filling,
    near-saturated metal) over up to a third of the length."""
    import torch

    n, _, h, w = x.shape
    r = lambda *s: torch.rand(*s, generator=gen, device=x.device)
    rows, cols = (torch.arange(h, dtype=torch.float32, device=x.device)[None, :, None],
                  torch.arange(w, dtype=torch.float32, device=x.device)[None, None, :])
    y0, hh = r(n, 1, 1) * h, r(n, 1, 1) * h * 0.35
    band = (rows >= y0) & (rows < y0 + hh)
    cy, cx, ang = r(n, 1, 1) * h, r(n, 1, 1) * w, r(n, 1, 1) * math.pi
    ra, rb = w * (0.4 + 0.6 * r(n, 1, 1)), h * (0.05 + 0.13 * r(n, 1, 1))
    dx, dy = cols - cx, rows - cy
    a = (dx * torch.cos(ang) + dy * torch.sin(ang)) / ra
    b = (-dx * torch.sin(ang) + dy * torch.cos(ang)) / rb
    ellipse = a**2 + b**2 < 1
    kind, on = r(n, 1, 1), r(n, 1, 1) < p
    mask = torch.where(kind < 0.5, band, ellipse) & on
    bright = kind.lt(0.25) | kind.ge(0.5)  # ellipses and half the bands are metal-bright
    value = torch.where(bright, 0.85 + 0.15 * r(n, 1, 1), 0.6 * r(n, 1, 1))
    return torch.where(mask[:, None], value[:, None].expand(n, 1, h, w), x)


def retrieval_top1(emb: np.ndarray, labels: np.ndarray, gallery_per_class: int = 2) -> float:
    """Top-1 of every sample against ``gallery_per_class`` others of each class (class max)."""
    gal, qry = [], []
    seen: dict[int, int] = {}
    for i, lab in enumerate(labels):
        (gal if seen.get(lab, 0) < gallery_per_class else qry).append(i)
        seen[lab] = seen.get(lab, 0) + 1
    sims = emb[qry] @ emb[gal].T
    glab = labels[gal]
    classes = np.unique(glab)
    per_class = np.stack([sims[:, glab == c].max(1) for c in classes], 1)
    return float(np.mean(classes[per_class.argmax(1)] == labels[qry]))


def train(cfg: TrainConfig) -> Path:
    import torch

    from raiox.vision.net import ArcFace, FixtureNet

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    crops, labels, located = load_shards(cfg.out / "data")
    train_idx, val_idx = split_classes(labels)
    train_idx = weigh_located(train_idx, located, cfg.located_copies)
    n_classes = cfg.classes or max(_planned_classes(cfg.out / "data"), int(labels.max()) + 1)
    train_lab = torch.from_numpy(labels[train_idx].astype(np.int64))
    net = FixtureNet(tuple(cfg.widths)).to(cfg.device)
    arc = ArcFace(n_classes, scale=cfg.scale, margin=cfg.margin).to(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = cfg.out / "ckpt.pt"
    saved = (load_checkpoint(ckpt, "net", "arc", "opt", "sched", "gen", "state", map_location=cfg.device,
                             hint=RESUME_HINT) if ckpt.exists() else None)
    from_model = saved is None and cfg.init_from is not None and Path(cfg.init_from).suffix == ".onnx"
    if from_model:  # before the optimiser: the net is replaced
        net = _from_shipped(cfg, net, arc, crops, labels, train_idx, gen)
    # a restart towards these steps that already happened (the same command rerun after a kill) is resumed, not redone
    restart = bool(saved and cfg.restart_schedule and saved["state"].get("schedule_to") != cfg.steps)
    heads, targets = _attribute_heads(cfg, saved, restart)
    params = list(net.parameters()) + list(arc.parameters()) + (list(heads.parameters()) if heads else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"step": 0, "history": []}
    # the schedule in force starts at the last restart (a plain resume continues that one, not a fresh one)
    start = saved["state"]["step"] if restart else (saved["state"].get("restarts") or [0])[-1] if saved else 0
    span = max(1, cfg.steps - start)  # (--steps 0: no step to take, and no division by zero)
    warm = max(1, min(100, span // 5)) if start else 300
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(warm, span))
    if saved:
        _load_net(net, saved["net"], ckpt, cfg)
        arc.load_state_dict(saved["arc"])
        if heads is not None and saved.get("heads"):
            heads.load_state_dict(saved["heads"])
        if not restart:
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"].cpu())  # map_location may have moved it to the GPU
        if "rng" in saved:  # dropout draws from the global generators: restore them for an exact resume
            torch.set_rng_state(saved["rng"].cpu())
        if saved.get("cuda_rng") is not None and str(cfg.device).startswith("cuda"):
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu())
        state = saved["state"]
        state.setdefault("restarts", []).extend([start] if restart else [])
        if restart:
            state["schedule_to"] = cfg.steps
        log.info("train.resume", step=state["step"], new_schedule=restart)
    elif from_model:
        state["init_from"] = str(cfg.init_from)
        log.info("train.init", model=str(cfg.init_from))
    elif cfg.init_from:
        init = load_checkpoint(cfg.init_from, "net", map_location=cfg.device)
        _load_net(net, init["net"], cfg.init_from, cfg)
        _carry_class_rows(arc, init.get("arc", {}).get("weight"))
        if heads is not None and init.get("heads"):
            heads.load_state_dict(init["heads"])
        state["init_from"] = str(cfg.init_from)
        log.info("train.init", checkpoint=str(cfg.init_from))
    log.info("train.start", samples=len(train_idx), systems=len(np.unique(labels[train_idx])), val_samples=len(val_idx),
             **_brief(cfg))
    last_save, t0, t0_step = time.time(), time.time(), state["step"]
    losses = list(saved.get("losses", [])) if saved else []  # the running mean continues across a resume
    batches = Batches(cfg, crops, train_idx, gen, state["step"])
    budget = TimeBudget(cfg, state["step"], warm, sched)
    while state["step"] < cfg.steps:
        net.train()
        pick, x = batches.draw()
        with _autocast(cfg):
            emb = net(x)
        emb, lab = emb.float(), train_lab[pick].to(cfg.device)  # the loss (and the heads) in float32
        loss = arc(emb, lab)
        if heads is not None:
            loss = loss + cfg.attribute_weight * heads.loss(emb, targets[lab])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        state["step"] += 1
        losses.append(loss.item())
        budget.tick(state)
        if state["step"] % 50 == 0:
            log.info("train.step", step=state["step"], loss=round(float(np.mean(losses[-50:])), 4),
                     lr=round(sched.get_last_lr()[0], 6),
                     per_s=round((state["step"] - t0_step) * cfg.batch / (time.time() - t0), 1))
            t0, t0_step = time.time(), state["step"]
        if time.time() - last_save > cfg.checkpoint_every_s or state["step"] == cfg.steps:
            state["history"].append({"step": state["step"], "loss": float(np.mean(losses[-100:])),
                                     **validate(net, crops, labels, val_idx, cfg.device, heads, targets)})
            log.info("train.checkpoint", **state["history"][-1])
            _save(ckpt, net, arc, opt, sched, gen, state, losses[-100:], heads)
            last_save = time.time()
    onnx_path = export(net, cfg.out / f"{cfg.model_name}.onnx", crops.shape[1:])
    (cfg.out / "train-state.json").write_text(json.dumps({"config": _brief(cfg), **state}, indent=2))
    return onnx_path


class Batches:
    """Augmented training batches. On a GPU the crops live on the device as uint8 and are augmented there, with a
    device generator seeded from the step (a resumed run draws its own augmentations, the same picks); on the CPU
    the crops are augmented with the run's generator, as ever."""

    def __init__(self, cfg: TrainConfig, crops: np.ndarray, train_idx: np.ndarray, gen, step: int):
        import torch

        self.cfg, self.train_idx, self.gen = cfg, train_idx, gen
        self.gpu = torch.device(cfg.device).type == "cuda"
        self.crops = torch.from_numpy(crops).to(cfg.device) if self.gpu else crops
        self.aug = torch.Generator(cfg.device).manual_seed(cfg.seed * 1_000_003 + step) if self.gpu else gen
        if self.gpu:
            torch.backends.cudnn.benchmark = True

    def draw(self):
        import torch

        pick = torch.randint(0, len(self.train_idx), (self.cfg.batch,), generator=self.gen)
        idx = self.train_idx[pick.numpy()]
        if self.gpu:
            x = self.crops[torch.from_numpy(idx).to(self.cfg.device)].float().div_(255)[:, None]
            return pick, augment(x, self.aug)
        return pick, augment(torch.from_numpy(self.crops[idx]).float().div_(255)[:, None], self.gen)


class TimeBudget:
    """``cfg.extra["time_budget_s"]`` (seconds, from the run's start): after 100 steps the run measures its pace
    and lowers ``cfg.steps`` to what fits, the cosine schedule stretched to end there (a GPU lease is timed)."""

    PROBE = 100

    def __init__(self, cfg: TrainConfig, step: int, warm: int, sched):
        self.cfg, self.first, self.warm, self.sched = cfg, step, warm, sched
        self.seconds = float(cfg.extra.get("time_budget_s") or 0)
        self.t0, self.t_probe = time.time(), None

    def tick(self, state: dict) -> None:
        done = state["step"] - self.first
        if not self.seconds or done > self.PROBE:
            return
        if done == 10:
            self.t_probe = time.time()
        elif done == self.PROBE and self.t_probe:
            pace = (time.time() - self.t_probe) / (self.PROBE - 10)
            fits = state["step"] + int((self.seconds - (time.time() - self.t0)) / pace)
            if fits < self.cfg.steps:
                self.cfg.steps = max(state["step"] + 1, fits)
                span = self.cfg.steps - (state.get("restarts") or [0])[-1]
                self.sched.lr_lambdas[0] = _schedule(self.warm, span)
                log.info("train.time_budget", steps=self.cfg.steps, s_per_step=round(pace, 4))


def _schedule(warm: int, span: int):
    return lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / span)))


def _autocast(cfg: TrainConfig):
    """The network's forward pass under bfloat16 where ``cfg.bf16`` asks for it (a no-op context otherwise)."""
    import torch

    return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.bf16)


def _load_net(net, weights: dict, source, cfg: TrainConfig) -> None:
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:  # another network's checkpoint, or no state dict
        if "size mismatch" not in str(exc):
            raise ResumeError(f"{source}: not a checkpoint of this network ({state_dict_error(exc)})",
                              option="--init-from" if source == cfg.init_from else "--out") from None
        raise ResumeError(f"{source} holds a network of other widths than {list(cfg.widths)} (--widths): "
                          "resume or fine-tune with the widths it was trained with", option="--widths") from None


def _from_shipped(cfg: TrainConfig, net, arc, crops, labels, train_idx, gen):
    """Start from an exported model (``.onnx``): its weights, BatchNorms calibrated on a batch of this data,
    and every class centre imprinted with the mean embedding of its training crops (so the fine-tuning
    starts from the model's own geometry, not from random centres)."""
    import torch
    from torch.nn import functional as F

    from raiox.vision.net import calibrate_norms, from_onnx

    try:
        net = from_onnx(cfg.init_from).to(cfg.device)
    except (ValueError, KeyError, IndexError, RuntimeError) as exc:  # no ONNX file, or not an exported FixtureNet
        raise ResumeError(f"{cfg.init_from}: not a model this network can start from ({first_line(exc)})",
                          option="--init-from") from None
    if tuple(net.widths) != tuple(cfg.widths):
        raise ResumeError(f"{cfg.init_from} has blocks {list(net.widths)} wide, not {list(cfg.widths)}: a fine-tune "
                          "keeps the network's widths", option="--widths")
    pick = torch.randint(0, len(train_idx), (256,), generator=gen).numpy()
    calibrate_norms(net, torch.from_numpy(crops[train_idx[pick]]).float().div_(255)[:, None].to(cfg.device))
    net.eval()
    sums, crops_once = torch.zeros_like(arc.weight), np.unique(train_idx)  # each crop once, however often drawn
    with torch.no_grad(), _autocast(cfg):  # as training runs
        for i in range(0, len(crops_once), 512):
            idx = crops_once[i : i + 512]
            x = torch.from_numpy(crops[idx]).float().div_(255)[:, None].to(cfg.device)
            emb = F.normalize(net(x).float(), dim=1)
            sums.index_add_(0, torch.from_numpy(labels[idx].astype(np.int64)).to(cfg.device), emb)
        seen = sums.norm(dim=1) > 0
        arc.weight[seen] = F.normalize(sums[seen], dim=1)
    return net


def _carry_class_rows(arc, weight) -> None:
    """Start the ArcFace rows of classes the init checkpoint already knew from its learnt centres.

    Shards are seeded by their first class, so class ``k`` is the same system in a dataset grown
    with ``render-data --classes`` (larger) as in the smaller one the checkpoint was trained on.
    """
    import torch

    if weight is None or weight.shape[1] != arc.weight.shape[1]:
        return
    rows = min(len(weight), len(arc.weight))
    with torch.no_grad():
        arc.weight[:rows] = weight[:rows].to(arc.weight.device)


def validate(net, crops, labels, idx, device, heads=None, targets=None) -> dict:
    """``val_top1``: retrieval top-1 on the held-out systems; with attribute heads also ``val_attributes``,
    each head's accuracy on their crops (where it applies)."""
    import torch

    if len(idx) == 0:
        return {"val_top1": float("nan")}
    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(crops[idx]).float().div_(255)[:, None].to(device)
        emb = torch.cat([net(x[i : i + 256]) + net(x[i : i + 256].flip(3)) for i in range(0, len(x), 256)])
        out = {"val_top1": round(retrieval_top1(torch.nn.functional.normalize(emb, dim=1).cpu().numpy(),
                                                labels[idx]), 4)}
        if heads is not None:
            want = targets[torch.from_numpy(labels[idx].astype(np.int64)).to(targets.device)]
            out["val_attributes"] = _head_accuracy(heads, emb, want)
    return out


def _head_accuracy(heads, emb, want) -> dict[str, float]:
    from raiox.vision.attributes import HEADS

    acc = {}
    for h, (name, logits) in enumerate(zip(HEADS, heads(emb))):
        known = want[:, h] >= 0  # heads, embeddings and targets all live on the training device
        acc[name] = round(float((logits.argmax(1)[known] == want[known, h]).float().mean()), 4)
    return acc


def _attribute_heads(cfg: TrainConfig, saved: dict | None, restart: bool):
    """The design-feature heads and the (classes, heads) targets when ``attribute_weight`` > 0 (None, None
    otherwise). A run resumes with the heads it was trained with: adding them to a run that had none needs a
    new run (``--init-from`` its checkpoint) or ``--restart-schedule``."""
    if cfg.attribute_weight <= 0:
        if saved and saved.get("heads") and not restart:
            raise ResumeError(f"{cfg.out / 'ckpt.pt'} was trained with attribute heads: resume it with "
                              "--attribute-weight > 0")
        return None, None
    import torch

    from raiox.vision.attributes import SIZES, attribute_table
    from raiox.vision.net import AttributeHeads

    if saved and not saved.get("heads") and not restart:
        raise ResumeError(f"{cfg.out / 'ckpt.pt'} was trained without attribute heads: add them with "
                         "--restart-schedule or start a new run with --init-from that checkpoint")
    return AttributeHeads(SIZES).to(cfg.device), torch.from_numpy(attribute_table(cfg.out / "data")).to(cfg.device)


def _planned_classes(data_dir: Path) -> int:
    meta = data_dir / "meta.json"
    return int(load_json(meta).get("classes", 0)) if meta.exists() else 0


def _save(path, net, arc, opt, sched, gen, state, losses=(), heads=None) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    torch.save({"net": net.state_dict(), "arc": arc.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": gen.get_state(), "state": state,
                "rng": torch.get_rng_state(), "cuda_rng": cuda_rng, "losses": list(losses),
                "heads": heads.state_dict() if heads is not None else None}, tmp)
    tmp.replace(path)


def _brief(cfg: TrainConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}


def export(net, path: Path, size: tuple[int, int] | None = None) -> Path:
    """Write the serving graph (N, 1, H, W) -> (N, 512) and check it against torch; (H, W) = ``size``, the
    training crops' (default: the canonical crop, 192 x 64)."""
    import onnxruntime as ort
    import torch

    from raiox.vision.canonical import CROP_H, CROP_W
    from raiox.vision.net import Exported

    model = Exported(net.cpu()).eval()
    probe = torch.rand(3, 1, *(size or (CROP_H, CROP_W)))
    torch.onnx.export(model, probe, str(path), input_names=["image"], output_names=["embedding"],
                      dynamic_axes={"image": {0: "N"}, "embedding": {0: "N"}}, opset_version=17, dynamo=False)
    with torch.no_grad():
        want = model(probe).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": probe.numpy()})[0]
    if not np.allclose(want, got, atol=1e-4):
        raise RuntimeError(f"ONNX export differs from torch by {np.abs(want - got).max():.2e}")
    return path
