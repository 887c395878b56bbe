"""One cached ONNX Runtime CPU session per model file, for the small nets beside the embedder (localiser, ends,
connection reader): ``RAIOX_ONNX_THREADS`` intra-op threads (default 1), one inter-op thread. Read from the
environment, where the caller puts it: raiox's settings export theirs (``.env`` too: ``kit.settings.get_settings``);
used alone, the package reads what the process was started with."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")


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


def metadata_entry(path: str, key: str, parse: Callable[[Any], T], default: T | None = None, *, what: str,
                   is_json: bool = True) -> T:
    """The metadata entry KEY of the model file PATH (its JSON; its text when not IS_JSON), through PARSE (its
    TypeError, ValueError or KeyError: a value it cannot take); DEFAULT when the file has no such entry (None: the
    entry is required). Broken JSON, a value PARSE refuses or a required entry missing is one line naming the file,
    what it should be (WHAT) and the entry: ``unusable``."""
    meta = session(path).get_modelmeta().custom_metadata_map
    if key not in meta:
        if default is not None:
            return default
        raise unusable(path, f"not {what} (no metadata entry {key})")
    try:
        return parse(json.loads(meta[key]) if is_json else meta[key])
    except (TypeError, ValueError, KeyError) as exc:  # json's JSONDecodeError is a ValueError
        from raiox.kit.errors import first_line

        raise unusable(path, f"its metadata entry {key} is not that of {what} ({first_line(exc)})") from None


def unusable(path: str | Path, why: str):
    """The error of a model file that loads but cannot be used: a ConfigError naming the setting that points at it
    (the configuration error of `raiox serve` / `worker`, exit 2), else an UnreadableData naming the file (exit 1)."""
    from raiox.kit.errors import ConfigError
    from raiox.vision.datagen import UnreadableData

    where = _naming(str(path))
    if where:
        return ConfigError(f"cannot use the ONNX model {path} ({where}): {why}")
    return UnreadableData(f"cannot use the ONNX model {path}: {why}")


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
