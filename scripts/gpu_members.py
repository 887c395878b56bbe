"""Render training data and train several embedder members side by side on one GPU, inside a timed lease.

One call does it all, each stage under a deadline so the whole run ends when the lease says:
1. `render-data` crops of ``--classes`` random systems (``--jobs`` processes, 256 x 128), cut short at its deadline
   (finished shards are kept; the ArcFace rows of systems never rendered are simply unused);
2. `render-located` crops where the shipped localiser finds those systems in scenes, likewise cut short;
3. every ``--member NAME:WIDTHS[:INIT]`` trained at once on the GPU (bf16, crops and augmentation on the device),
   each with ``--train-s`` seconds of steps (``raiox vision train --time-budget``), exported to ONNX with its
   card. A member killed at the deadline is exported from its last checkpoint instead.
The ONNX files go to ``--results``, with ``report.json`` (stages, and each member's card and training state).

    python scripts/gpu_members.py --out /tmp/gm --results $OUT --device cuda --jobs 16 \\
        --member wide:64,128,256 --member mid:48,96,192 --member m2:32,64,128:.gpu/m2.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CROP = (256, 128)


def stage(code: str, deadline_s: float, log: Path, env: dict | None = None) -> int | None:
    """``python -c code`` in its own process group, killed (all its workers too) at the deadline; its exit code,
    or None when it was stopped."""
    with log.open("a") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})})
        try:
            return proc.wait(timeout=max(1.0, deadline_s))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(3)
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            proc.wait()
            return None


def member_code(out: Path, name: str, widths: str, init: str | None, args) -> str:
    cfg = dict(out=str(out), steps=args.max_steps, batch=args.batch, lr=args.lr_init if init else args.lr,
               seed=args.seed, device=args.device, threads=2, model_name=f"raiox-gpu-{name}",
               init_from=init, located_copies=2, checkpoint_every_s=args.checkpoint_s, bf16=True,
               widths=[int(w) for w in widths.split(",")], extra={"time_budget_s": args.train_s})
    return ("import json; from pathlib import Path; from raiox.vision.train import TrainConfig, train; "
            "from raiox.vision.card import write_card; "
            f"c = json.loads({json.dumps(json.dumps(cfg))}); c['out'] = Path(c['out']); "
            "c['init_from'] = c['init_from'] and Path(c['init_from']); c['widths'] = tuple(c['widths']); "
            "p = train(TrainConfig(**c)); print('card', write_card(c['out'], p))")


def export_from_checkpoint(out: Path, name: str, widths: str) -> Path | None:
    """The member's last checkpoint exported (a run stopped at the deadline)."""
    import torch

    from raiox.vision.net import FixtureNet
    from raiox.vision.train import export

    ckpt = out / "ckpt.pt"
    if not ckpt.exists():
        return None
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = FixtureNet(tuple(int(w) for w in widths.split(",")))
    net.load_state_dict(saved["net"])
    (out / "train-state.json").write_text(json.dumps({"stopped_at_deadline": True, **saved["state"]}, indent=2))
    return export(net, out / f"raiox-gpu-{name}.onnx", CROP)


# What every stage imports. A GPU machine's image may lack some (session 47's lacked pydantic-settings, which the
# localiser's model lookup reads, so the located crops failed): carry them as wheels (docs/vision.md, "GPU members").
NEEDED = ("structlog", "jsonschema", "pydantic_settings", "onnxruntime", "torch", "cv2", "raiox.kit.settings",
          "raiox.vision.locdata", "raiox.vision.train", "raiox.vision.card")


def preflight() -> None:
    """Stop at once, naming them, when modules a stage needs cannot be imported (not minutes later, in a stage)."""
    import importlib

    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        sys.exit("cannot import: " + "; ".join(missing))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--classes", type=int, default=12000)
    ap.add_argument("--scenes", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--render-s", type=float, default=140)
    ap.add_argument("--located-s", type=float, default=90)
    ap.add_argument("--train-s", type=float, default=270)
    ap.add_argument("--grace-s", type=float, default=60, help="beyond --train-s: loading, validation, export")
    ap.add_argument("--max-steps", type=int, default=200000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-init", type=float, default=7e-4, help="members that start from a model (fine-tunes)")
    ap.add_argument("--checkpoint-s", type=float, default=60)
    ap.add_argument("--member", action="append", required=True, help="NAME:WIDTHS[:INIT_ONNX]")
    args = ap.parse_args()
    preflight()
    data, log = args.out / "data", args.out / "log.txt"
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    one = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAIOX_ONNX_THREADS": "1"}
    t0, report = time.time(), {}
    rc = stage("from pathlib import Path; from raiox.vision.datagen import render_dataset; "
               f"render_dataset(Path({str(data)!r}), classes={args.classes}, per_class=10, seed={args.seed}, "
               f"jobs={args.jobs}, crop={CROP})", args.render_s, log, one)
    report["render_data"] = {"rc": rc, "s": round(time.time() - t0), "shards": len(list(data.glob("shard-0*.npz")))}
    t1 = time.time()
    rc = stage("from pathlib import Path; from raiox.vision.locdata import render_located; "
               f"render_located(Path({str(data)!r}), {args.scenes}, seed={args.seed}, jobs={args.jobs})",
               args.located_s, log, one)
    report["render_located"] = {"rc": rc, "s": round(time.time() - t1),
                                "shards": len(list(data.glob("shard-loc*.npz")))}
    print(json.dumps(report), flush=True)
    if any(report[k]["rc"] not in (0, None) for k in ("render_data", "render_located")):
        print(log.read_text()[-4000:], flush=True)  # why a stage failed (the rest of the run goes on)
    procs = {}
    for spec in args.member:
        name, widths, *init = spec.split(":")
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        (folder / "data").exists() or (folder / "data").symlink_to(data.resolve())
        with (folder / "log.txt").open("a") as out:
            procs[name] = (folder, widths, subprocess.Popen(
                [sys.executable, "-c", member_code(folder, name, widths, init[0] if init else None, args)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    end = time.time() + args.train_s + args.grace_s
    for name, (folder, widths, proc) in procs.items():
        try:
            rc = proc.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        onnx = folder / f"raiox-gpu-{name}.onnx"
        if not onnx.exists():
            onnx = export_from_checkpoint(folder, name, widths)
        card, state = folder / f"raiox-gpu-{name}.md", folder / "train-state.json"
        report[name] = {"rc": rc, "onnx": bool(onnx), "card": card.read_text() if card.exists() else None,
                        "state": json.loads(state.read_text()) if state.exists() else None}
        if onnx:
            shutil.copy2(onnx, args.results / onnx.name)
        print(name, (folder / "log.txt").read_text()[-3000:], flush=True)
    report["total_s"] = round(time.time() - t0)
    (args.results / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
