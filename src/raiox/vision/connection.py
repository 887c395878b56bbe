"""Reading the connection from the platform end of a fixture (``connection-v2``), to re-rank catalog candidates.

The embedding carries a fixture's apex, taper and thread but hardly its connection: a linear head on it
reads the connection kind of unseen systems at 0.66 and the cone angle at 0.29 (docs/benchmarks.md,
session 14), and look-alike siblings that differ only there are half of the top-1 errors. A small network
of its own looks at a zoom on the platform end (``platform_zoom``: one scale on both axes, from a third of a
width above the platform edge down, 1.3 widths across) and gives the probability of each connection class
(``CLASSES``: external hex, internal hex, tri-channel, or conical at one of the six cone angles). A catalog
system whose spec names its connection then scores

    similarity + WEIGHT * ln(p(its class) + FLOOR)

so only siblings the embedding already ranks close swap places (the search reorders its first
``max(top_k, 5)`` systems only). Systems without a spec get the mean bonus of the ranked systems that have one
(no reward, no penalty).
Under an abutment or crown the connection is mostly hidden; the reader then spreads its probability and the
re-rank does little. Without the model file (or with ``RAIOX_CONNECTION_MODEL=none``) nothing is re-ranked.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from raiox.vision.onnxrt import metadata_entry, missing, model_file, session


@dataclass(frozen=True)
class Zoom:
    """Where and how finely ``platform_zoom`` samples: ``h`` x ``w`` pixels, one scale on both axes, ``across``
    box widths across the axis, starting ``above`` box widths above the platform edge."""

    h: int
    w: int
    across: float
    above: float


# connection-v1's, and what new models are trained on: about half the film's resolution on periapical fixtures. A
# finer zoom (160 x 112 over 1.05 widths, 1.7 times finer) learnt worse on the same renders (docs/benchmarks.md,
# session 16)
ZOOM = Zoom(112, 80, 1.3, 0.3)
# the shipped model, in ``models/`` (connection-v1 stays shipped: RAIOX_CONNECTION_MODEL)
MODEL_FILE = "connection-v2.onnx"
ZOOM_KEY = "raiox_zoom"  # the ONNX metadata entry a model's zoom is stored under (absent: ZOOM, connection-v1's)
CONE_ANGLES = (8.0, 11.0, 11.5, 16.0, 22.0, 24.0)
CLASSES = ("external_hex", "internal_hex", "tri_channel", *(f"conical_{a:g}" for a in CONE_ANGLES))
WEIGHT = 0.01  # chosen on the evaluation set of seed 7000, checked on 7001 (docs/benchmarks.md, session 15)
FLOOR = 1e-4
MODEL_ENV = "RAIOX_CONNECTION_MODEL"  # another connection model (ONNX), or "none" to switch the re-rank off


def spec_class(spec: dict | None) -> int | None:
    """The index in ``CLASSES`` of a geometry spec's connection, None when unknown or outside them."""
    conn = (spec or {}).get("connection") or {}
    kind = conn.get("kind")
    if kind == "conical":
        angle = conn.get("cone_angle_deg")
        return 3 + CONE_ANGLES.index(float(angle)) if angle is not None and float(angle) in CONE_ANGLES else None
    return {"external_hex": 0, "internal_hex": 1, "tri_channel": 2}.get(kind)


def platform_zoom(image: np.ndarray, box: np.ndarray, zoom: Zoom = ZOOM) -> np.ndarray:
    """(zoom.h, zoom.w) float32 zoom on the platform end of an oriented box (platform edge first);
    intensities stretched (2nd-99.5th percentile) over the fixture's part of it."""
    b = np.asarray(box, np.float64).reshape(4, 2)
    top, bottom = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2
    axis = bottom - top
    axis = axis / max(float(np.hypot(*axis)), 1e-6)
    normal = np.array([axis[1], -axis[0]])
    if np.dot(b[1] - b[0], normal) < 0:
        normal = -normal
    width = max((np.hypot(*(b[1] - b[0])) + np.hypot(*(b[2] - b[3]))) / 2, 1.0)
    step = zoom.across * width / zoom.w  # image pixels per zoom pixel
    start = top - axis * zoom.above * width - normal * (zoom.across * width / 2)
    matrix = np.array([[normal[0] * step, axis[0] * step, start[0]], [normal[1] * step, axis[1] * step, start[1]]])
    img, matrix = _around(np.asarray(image, np.float32), matrix, (zoom.w, zoom.h), pad=int(np.ceil(1.5 * step)) + 2)
    if step > 1.2:  # anti-alias before shrinking
        img = cv2.GaussianBlur(img, (0, 0), 0.45 * step)
    out = cv2.warpAffine(img, matrix, (zoom.w, zoom.h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    row0, col0 = int(round(zoom.above * width / step)), max(int(round((zoom.across - 1) / 2 * width / step)), 0)
    inside = out[row0:, col0:zoom.w - col0]
    lo, hi = np.percentile(inside, [2, 99.5]) if inside.size else (0.0, 1.0)
    return np.clip((out - lo) / max(hi - lo, 1e-3), 0, 1).astype(np.float32)


def _around(img: np.ndarray, matrix: np.ndarray, size: tuple[int, int], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``img`` a zoom of ``size`` (w, h) samples (plus ``pad`` pixels for the blur), and ``matrix``
    moved onto it: blurring a whole film for every fixture would cost more than the read itself."""
    zw, zh = size
    corners = np.array([[0, 0, 1], [zw, 0, 1], [0, zh, 1], [zw, zh, 1]], np.float64) @ matrix.T
    h, w = img.shape
    x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - pad, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + pad + 1, [x0 + 1, y0 + 1], [w, h])
    moved = matrix.copy()
    moved[:, 2] -= (x0, y0)
    return img[y0:y1, x0:x1], moved


def model_path() -> Path | None:
    """The model file: ``RAIOX_CONNECTION_MODEL`` from the environment, else from the settings (``.env``),
    else the shipped one; None when switched off (``none``) or missing."""
    return model_file(MODEL_ENV, "connection_model", MODEL_FILE)


def problem() -> str | None:
    """Why a configured reader (``RAIOX_CONNECTION_MODEL`` / ``connection_model``) will read nothing: its file is
    missing (None otherwise)."""
    return missing(MODEL_ENV, "connection_model")


def zoom_of(path: Path) -> Zoom:
    """The zoom a model file was trained on (its ``ZOOM_KEY`` metadata; a file without it, like connection-v1's,
    reads with ``ZOOM``); read once per file, like its session."""
    return _zoom_of(str(path))


@lru_cache(maxsize=8)
def _zoom_of(path: str) -> Zoom:
    return metadata_entry(path, ZOOM_KEY, _zoom, ZOOM, what="a connection model (a zoom: h, w, across, above)")


def _zoom(value) -> Zoom:
    """The zoom a model's ``ZOOM_KEY`` holds (``zoom_metadata``); TypeError or ValueError for anything else."""
    zoom = Zoom(**value)  # TypeError: not an object, a key missing or one too many
    sizes, spans = (zoom.h, zoom.w), (zoom.across, zoom.above)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        raise ValueError(f"h and w must be positive whole numbers (got {zoom.h!r}, {zoom.w!r})")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in spans) \
            or zoom.across <= 0:
        raise ValueError(f"across must be a positive number and above a number (got {zoom.across!r}, {zoom.above!r})")
    return zoom


def zoom_metadata(zoom: Zoom) -> dict[str, str]:
    return {ZOOM_KEY: json.dumps(asdict(zoom))}


def predict(zooms: np.ndarray, path: Path) -> np.ndarray:
    """(N, len(CLASSES)) probabilities for (N, h, w) zooms (the model's ``zoom_of``), averaged with their mirror
    images."""
    x = np.asarray(zooms, np.float32)[:, None]
    run = session(str(path)).run
    out = []
    for i in range(0, len(x), 32):
        part = x[i:i + 32]
        both = run(None, {"zoom": np.concatenate([part, part[..., ::-1]])})[0]
        out.append((both[:len(part)] + both[len(part):]) / 2)
    logits = np.concatenate(out)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def read(image: np.ndarray, boxes: list[np.ndarray], path: Path | None = None) -> list[np.ndarray | None]:
    """The connection probabilities of every box's fixture (None for each without the model)."""
    path = path or model_path()
    if path is None or not boxes:
        return [None] * len(boxes)
    zoom = zoom_of(path)
    return list(predict(np.stack([platform_zoom(image, b, zoom) for b in boxes]), path))


def bonus(probs: np.ndarray | None, classes: list[int | None], weight: float | None = None) -> np.ndarray:
    """The score added to each candidate: ``weight * ln(p(class) + FLOOR)``; a candidate of unknown class
    gets the mean bonus of those known (0 for all when no probabilities or no class is known)."""
    weight = WEIGHT if weight is None else weight
    out = np.zeros(len(classes), np.float64)
    known = [i for i, c in enumerate(classes) if c is not None]
    if probs is None or not known or weight == 0:
        return out
    p = np.asarray(probs, np.float64).reshape(-1)
    for i in known:
        out[i] = weight * np.log(p[classes[i]] + FLOOR)
    unknown = [i for i, c in enumerate(classes) if c is None]
    out[unknown] = out[known].mean()
    return out
