"""Model card for a trained embedder, and installing a model into the package."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path


def write_card(out: Path, onnx_path: Path, eval_section: str | None = None) -> Path:
    from raiox.vision.datagen import load_json

    state = load_json(out / "train-state.json", "run `raiox vision train` again: its next checkpoint writes it")
    meta_path = out / "data" / "meta.json"
    meta = load_json(meta_path) if meta_path.exists() else {}
    cfg, hist = state["config"], state.get("history", [])
    last = hist[-1] if hist else {}
    name = onnx_path.stem
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    lines = [
        f"# Model card: {name}",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; file `{onnx_path.name}`, "
        f"{onnx_path.stat().st_size / 1e6:.1f} MB, sha256 `{digest[:16]}...`.",
        "- Task: embed one canonical implant-fixture crop so crops of the same implant system land closest.",
        f"- Input `image`: float32 (N, 1, {_input_size(onnx_path)}) in [0, 1], the `raiox.vision.canonical_crop` "
        "output (long axis vertical, platform up, metal bright, zero outside the fixture). "
        "Output `embedding`: (N, 512) float32, L2-normalised; the graph averages the crop and its mirror image.",
        "- Network: compact residual CNN (5x5 stride-2 stem, three residual stages 32/64/128, "
        "row-wise pooling that keeps the platform/body/apex position, linear 512 + BatchNorm), "
        "trained with ArcFace (additive angular margin).",
        f"- Data: {meta.get('crops', '?')} synthetic crops of {meta.get('classes', '?')} random systems "
        f"({meta.get('per_class', '?')} renders each) sampled from the `raiox.synth` spec ranges by "
        "`raiox.vision.datagen`" + _rule_note(meta) + "; the demo catalog systems are never used in training "
        "(evaluation only). "
        f"Renderer: {meta.get('renderer', 'raiox.synth')}"
        + (f" at {meta['size'][0]}x{meta['size'][1]} px" if meta.get("size") else "") + ".",
        f"- Training: {cfg.get('steps')} steps, batch {cfg.get('batch')}, AdamW lr {cfg.get('lr')}, "
        f"weight decay {cfg.get('weight_decay')}, ArcFace s={cfg.get('scale')} m={cfg.get('margin')}, "
        f"seed {cfg.get('seed')}, device {cfg.get('device')}; on-line augmentation: mirror, box jitter "
        "(rotation, scale, shift), gamma, blur, noise, occluders (white cone-cut bands, bright tilted ellipses, "
        "grey strips)"
        + _heads_note(cfg, last) + ".",
        f"- Validation (held-out random systems, 2 gallery renders each, top-1): {last.get('val_top1', 'n/a')} "
        f"at step {last.get('step', '?')}; final training loss {last.get('loss', float('nan')):.3f}.",
        "- Command: `raiox vision train --out DIR` (resumes from `DIR/ckpt.pt`; `--init-from CKPT` starts a new run "
        "from another run's network weights; `--restart-schedule` keeps the weights and starts a new "
        "warm-up + cosine). "
        f"This run: {_lineage(state)}.",
        "- Limits: trained on synthetic radiographs only; real films differ (bone texture, "
        "angulation, scatter). Vectors of different model ids are never comparable.",
    ]
    if eval_section:
        lines += ["", "## Evaluation (demo catalog, `raiox vision eval`)", "", eval_section]
    card = out / f"{name}.md"
    card.write_text("\n".join(lines) + "\n")
    return card


def _rule_note(meta: dict) -> str:
    from raiox.vision.datagen import physical_rule

    if physical_rule(meta):
        return ", physical sizes only (every system and size variant's body holds its connection)"
    return ", drawn the old way (some bodies too narrow for their connection)" if meta else ""


def _heads_note(cfg: dict, last: dict) -> str:
    if not cfg.get("attribute_weight"):
        return ""
    acc = ", ".join(f"{k} {v:.2f}" for k, v in last.get("val_attributes", {}).items())
    return (f"; auxiliary heads classify each crop's design features from the embedding (`raiox.vision.attributes`), "
            f"weight {cfg['attribute_weight']}" + (f"; their validation accuracy: {acc}" if acc else ""))


def _input_size(onnx_path: Path) -> str:
    import onnx

    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim[2:]
    return ", ".join(str(d.dim_value) for d in dims)


def _lineage(state: dict) -> str:
    parts = [f"initialised from `{Path(state['init_from']).parent.name}/{Path(state['init_from']).name}` "
             "(an earlier run)" if state.get("init_from")
             else "trained from scratch"]
    if state.get("restarts"):
        parts.append(f"schedule restarts at steps {state['restarts']}")
    return ", ".join(parts) + "; CPU only, on a 2-core machine shared with other work"


def install_model(onnx_path: Path, card: Path) -> Path:
    target = Path(str(resources.files("raiox.vision") / "models"))
    shutil.copy2(onnx_path, target / onnx_path.name)
    shutil.copy2(card, target / card.name)
    return target / onnx_path.name
