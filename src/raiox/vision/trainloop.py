"""The training loop of the auxiliary nets (localiser, ends model; torch, the ``train`` extra):
AdamW, a one-cycle learning rate, a seeded generator for batches and augmentation, and a time-based
atomic checkpoint that a rerun resumes from (same weights, optimiser, schedule and generator)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from raiox.vision.datagen import RESUME_HINT, load_checkpoint, load_weights

log = structlog.get_logger(__name__)


@dataclass
class Loop:
    ckpt: Path  # checkpoint file (resumed from when it exists)
    steps: int
    lr: float
    seed: int
    name: str  # log event prefix
    weight_decay: float = 1e-4
    checkpoint_every_s: float = 180.0


def run(loop: Loop, net, batch_loss: Callable, state: dict | None = None,
        on_checkpoint: Callable[[object, int, list[float], dict], None] | None = None) -> tuple[int, list[float], dict]:
    """Train ``net`` to ``loop.steps``; ``batch_loss(net, gen)`` draws one batch with ``gen`` and returns
    its loss. ``state`` holds extra values saved with every checkpoint (a resumed run gets the saved ones
    back); ``on_checkpoint(net, step, losses, state)`` runs before each save and may update ``state``.
    Returns the step reached, this run's losses and the state."""
    import torch

    state = dict(state or {})
    opt = torch.optim.AdamW(net.parameters(), lr=loop.lr, weight_decay=loop.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=loop.lr, total_steps=loop.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(loop.seed)
    step = 0
    if loop.ckpt.exists():
        saved = load_checkpoint(loop.ckpt, "net", "opt", "sched", "gen", "step", hint=RESUME_HINT)
        load_weights(net, saved["net"], loop.ckpt)
        opt.load_state_dict(saved["opt"]), sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        step = saved["step"]
        state.update({k: v for k, v in saved.items() if k not in ("net", "opt", "sched", "gen", "step")})
    last, t0, losses = time.time(), time.time(), []
    while step < loop.steps:
        net.train()
        loss = batch_loss(net, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            log.info(f"{loop.name}.step", step=step, loss=round(float(np.mean(losses[-50:])), 4),
                     steps_per_s=round(50 / (time.time() - t0), 2))
            t0 = time.time()
        if time.time() - last > loop.checkpoint_every_s or step == loop.steps:
            if on_checkpoint is not None:
                on_checkpoint(net, step, losses, state)
            tmp = loop.ckpt.with_suffix(".tmp")
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": gen.get_state(), "step": step, **state}, tmp)
            tmp.replace(loop.ckpt)
            last = time.time()
    return step, losses, state
