"""Reading a fixture's design features from its embedding (``features-v2``), to re-rank catalog candidates.

The embedding is a metric: cosine similarity weighs every direction of it alike, also those that carry a
look-alike feature weakly. A small network fitted on the frozen vectors of one embedder (``raiox vision
train-features``: an MLP per design feature of ``raiox.vision.attributes.HEADS``) reads apex, thread, collar
and taper from them better than the nearest references alone show (docs/benchmarks.md, session 27). A catalog
system whose spec names those features then scores

    similarity + connection bonus + WEIGHT * sum over the features of ln p(its value)

on the same first systems the connection reader reorders (``raiox.vision.ranking.RERANK_POOL``). The connection
and cone angle are left to the connection reader, which reads them from the platform end (the embedding's
own reading of them made the ranking worse). A system without a spec, or a feature its spec lacks, gets the
mean bonus of the ranked systems that have one (no reward, no penalty).

A model file belongs to the embedder it was fitted on (ONNX metadata ``raiox_embedder``): vectors of another
embedder are not read: the shipped readers are one per shipped embedder that has one (``SHIPPED``). Without the
file (or with ``RAIOX_FEATURE_MODEL=none``) nothing is read.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from raiox.vision.attributes import HEADS
from raiox.vision.onnxrt import configured, metadata_entry, missing, model_file, session, unusable

SHIPPED = {"raiox-v12": "features-v2.onnx", "raiox-v11": "features-v1.onnx"}  # embedder -> its reader in ``models/``
MODEL_FILE = SHIPPED["raiox-v12"]  # the default embedder's
EMBEDDER_KEY = "raiox_embedder"  # ONNX metadata: the ``model_id`` of the embedder whose vectors it reads
HEADS_KEY = "raiox_heads"  # ONNX metadata: the features it reads, in the order of its output's columns
READ = ("apex_shape", "apex_hole", "flutes", "profile", "leads", "collar", "tapered", "progressive")
WEIGHT = 0.01  # chosen on the evaluation sets of seeds 7000-7003 (docs/benchmarks.md, session 27)
MODEL_ENV = "RAIOX_FEATURE_MODEL"  # another feature model (ONNX), or "none" to switch the re-rank off

Features = dict[str, np.ndarray]  # feature name -> log-probabilities of its classes (attributes.HEADS order)


def model_path(embedder_id: str | None = None) -> Path | None:
    """The model file: ``RAIOX_FEATURE_MODEL`` from the environment, else from the settings (``.env``), else
    the shipped reader of ``embedder_id`` (default: the default embedder's); None when switched off (``none``)
    or missing."""
    return model_file(MODEL_ENV, "feature_model", SHIPPED.get(embedder_id, MODEL_FILE))


def problem(embedder_id: str) -> str | None:
    """Why a configured reader (``RAIOX_FEATURE_MODEL`` / ``feature_model``) will read nothing for ``embedder_id``:
    its file is missing, or it was fitted on another embedder's vectors. None when it will read, or when none is
    configured (an embedder without a shipped reader runs without one, as designed)."""
    if not configured(MODEL_ENV, "feature_model"):
        return None
    if gone := missing(MODEL_ENV, "feature_model"):
        return gone
    path = model_path(embedder_id)
    if path is None:  # switched off ("none")
        return None
    reads = _meta(str(path))[0]
    if reads != embedder_id:
        return f"{MODEL_ENV}={path}: it reads the vectors of `{reads}`, not those of `{embedder_id}`"
    return None


def metadata(embedder_id: str, heads: tuple[str, ...] = READ) -> dict[str, str]:
    """The ONNX metadata a feature model carries."""
    return {EMBEDDER_KEY: embedder_id, HEADS_KEY: json.dumps(list(heads))}


def heads_of(path: Path) -> tuple[str, ...]:
    """The features the model file reads, in its output's order (its metadata, checked: ``_meta``)."""
    return _meta(str(path))[1]


@lru_cache(maxsize=8)
def _meta(path: str) -> tuple[str, tuple[str, ...]]:
    """(the embedder whose vectors the model file reads, the features of its output's columns); a file whose
    metadata does not say both (``onnxrt.metadata_entry``), or whose output is not as wide as its features'
    classes, is one line naming it (``onnxrt.unusable``)."""
    what = "a feature model (raiox vision train-features)"
    reads = metadata_entry(path, EMBEDDER_KEY, _embedder_id, what=what, is_json=False)
    heads = metadata_entry(path, HEADS_KEY, _heads, what=what)
    width = session(path).get_outputs()[0].shape[-1]
    classes = sum(len(HEADS[name][0]) for name in heads)
    if isinstance(width, int) and width != classes:
        raise unusable(path, f"its output has {width} columns, the classes of its features ({HEADS_KEY}) {classes}")
    return reads, heads


def _embedder_id(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"not an embedder's model_id: {value!r}")
    return value


def _heads(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise ValueError(f"not a list of feature names: {value!r}")
    if unknown := [name for name in value if name not in HEADS]:
        raise ValueError(f"unknown features {unknown} (known: {', '.join(HEADS)})")
    return tuple(value)


def read(vectors: np.ndarray, embedder_id: str, path: Path | None = None) -> list[Features | None]:
    """Each vector's features (None for each when there is no model, or the model reads another embedder's)."""
    path = path or model_path(embedder_id)
    if path is None or len(vectors) == 0:
        return [None] * len(vectors)
    reads, heads = _meta(str(path))
    if reads != embedder_id:
        return [None] * len(vectors)
    logits = session(str(path)).run(None, {"embedding": np.asarray(vectors, np.float32).reshape(len(vectors), -1)})[0]
    out, start = [{} for _ in range(len(vectors))], 0
    for name in heads:
        part = logits[:, start:start + len(HEADS[name][0])].astype(np.float64)
        start += len(HEADS[name][0])
        part = part - part.max(1, keepdims=True)
        logp = part - np.log(np.exp(part).sum(1, keepdims=True))
        for row, values in zip(out, logp):
            row[name] = values.astype(np.float32)
    return out


def spec_value(spec: dict | None, name: str) -> int | None:
    """The class index of a spec's feature ``name`` (``attributes.HEADS``), None when unknown."""
    classes, value = HEADS[name]
    try:
        v = value(spec or {})
    except (KeyError, TypeError, AttributeError):
        return None
    return classes.index(v) if v in classes else None


def bonus(features: Features | None, specs: list[dict | None], weight: float | None = None) -> np.ndarray:
    """The score added to each candidate (by its spec): ``weight`` times the sum over the features read of
    ln p(the spec's value); per feature, a candidate whose spec does not name it gets the mean of those that do."""
    weight = WEIGHT if weight is None else weight
    out = np.zeros(len(specs), np.float64)
    if not features or weight == 0:
        return out
    for name, logp in features.items():
        values = [spec_value(s, name) for s in specs]
        known = [i for i, v in enumerate(values) if v is not None]
        if not known:
            continue
        part = np.array([logp[v] if v is not None else np.nan for v in values], np.float64)
        part[np.isnan(part)] = part[known].mean()
        out += weight * part
    return out
