"""One cached ONNX Runtime CPU session per model file, for the small nets beside the embedder (localiser, ends,
connection reader): ``RAIOX_ONNX_THREADS`` intra-op threads (default 1), one inter-op thread."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=8)
def session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("RAIOX_ONNX_THREADS", "1"))
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def configured(env: str, setting: str) -> str:
    """What configures a small model's file: ``env`` from the environment, else the ``setting`` of the settings
    (``.env``); "" when neither names one (the shipped file)."""
    override = os.environ.get(env)
    if override is None:
        from raiox.kit.settings import get_settings

        override = getattr(get_settings(), setting)
    return override


def missing(env: str, setting: str) -> str | None:
    """Why a configured model file cannot be used because it is not there (None: it is, or none is configured, or
    it is switched off): ``model_file`` would silently run without it."""
    override = configured(env, setting)
    if override and override.lower() != "none" and not Path(override).exists():
        return f"{env}={override}: no such file"
    return None


def model_file(env: str, setting: str, shipped: str) -> Path | None:
    """A small model's file: ``env`` from the environment, else the ``setting`` of the settings (``.env``), else
    the ``shipped`` file in ``raiox/vision/models``; None when switched off (``none``) or missing."""
    override = configured(env, setting)
    if override.lower() == "none":
        return None
    path = Path(override) if override else Path(__file__).parent / "models" / shipped
    return path if path.exists() else None
