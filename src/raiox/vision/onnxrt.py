"""One cached ONNX Runtime CPU session per model file, for the small nets beside the embedder (localiser, ends,
connection reader): ``RAIOX_ONNX_THREADS`` intra-op threads (default 1), one inter-op thread."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=8)
def session(path: str):
    return load(path)


def load(path: str | Path, setting: str | None = None):
    """An ONNX Runtime CPU session of the model file PATH; a file ONNX Runtime cannot load (not a model, cut short,
    unsupported operators) is a ConfigError naming the file and the setting that points at it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("RAIOX_ONNX_THREADS", "1"))
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no public base class
        from raiox.kit.errors import ConfigError, first_line

        where = setting or _naming(str(path))
        raise ConfigError(f"cannot load the ONNX model {path}{f' ({where})' if where else ''}: "
                          f"{first_line(exc)}") from None


def _naming(path: str) -> str | None:
    """The RAIOX_*_MODEL setting whose value is PATH, if one is."""
    for env in ("RAIOX_CONNECTION_MODEL", "RAIOX_FEATURE_MODEL", "RAIOX_ENDS_MODEL"):
        if configured(env, env.removeprefix("RAIOX_").lower()) == path:
            return env
    return None


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
