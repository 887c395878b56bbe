"""Where a detected fixture starts and stops: a learned read of the strip along its box (``ends-v1``).

The localiser's boxes get the axis right but often not the ends: the platform edge is confused with
an abutment, crown, cap or occluder (on the evaluation scenes 42 % of boxes had it more than 10 % of
the length off) and the width comes out a few percent narrow. The canonical crop, and so the
embedding, depends on both. ``adjust`` resamples a strip along each box's axis, reaching half a
length beyond each end and 0.8 widths to each side of the axis; a small network labels every row
(inside the fixture's length or not) and every column (inside its major diameter or not), and the
box is redrawn over those runs. Without the model file the boxes are returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from raiox.vision.onnxrt import missing, model_file, session
from raiox.vision.refine import Frame, Pyramid

STRIP_H, STRIP_W = 160, 40  # rows along the axis, columns across
REACH_T = 0.5  # the strip reaches this fraction of the box length beyond each end
REACH_S = 0.8  # ... and this many box widths to each side of the axis
MIN_KEEP, MAX_GROW = 0.4, 2.0  # a redrawn length outside [0.4, 2] x the box's is not trusted
# what the model's read replaces: on the evaluation scenes it moves the platform edge much closer
# (median error 7.7 -> 1.9 % of the length) but its apex and width are worse than the refinement's
# (apex 2.4 -> 5.4 %, width 6.1 -> 7.3 %), so those are kept from the input box
REDRAW = frozenset({"platform"})
MODEL_ENV = "RAIOX_ENDS_MODEL"  # another ends model (ONNX), or "none" to switch the step off
MODEL_FILE = "ends-v1.onnx"


@dataclass
class Strip:
    """Where a strip's rows and columns lie in the image: row i at ``t_lo + i * t_step`` along the
    axis from ``frame.centre``, column j at ``s_lo + j * s_step`` along the normal."""

    frame: Frame
    t_lo: float
    t_step: float
    s_lo: float
    s_step: float

    def box(self, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
        """The box spanning fractional rows ``rows`` and columns ``cols`` (platform edge first)."""
        (t0, t1), (s0, s1) = [self.t_lo + r * self.t_step for r in rows], [self.s_lo + c * self.s_step for c in cols]
        c, a, n = self.frame.centre, self.frame.axis, self.frame.normal
        return np.array([c + a * t0 + n * s0, c + a * t0 + n * s1, c + a * t1 + n * s1, c + a * t1 + n * s0],
                        np.float32)

    def index(self, box: np.ndarray) -> tuple[float, float, float, float]:
        """Fractional (first row, last row, first column, last column) of ``box``'s length and width
        in this strip: the training target for a ground-truth box."""
        box = np.asarray(box, np.float64).reshape(4, 2)
        ends = [((box[0] + box[1]) / 2 - self.frame.centre) @ self.frame.axis,
                ((box[2] + box[3]) / 2 - self.frame.centre) @ self.frame.axis]
        mid = (box.mean(0) - self.frame.centre) @ self.frame.normal
        half = (np.hypot(*(box[1] - box[0])) + np.hypot(*(box[2] - box[3]))) / 4
        rows = sorted((t - self.t_lo) / self.t_step for t in ends)
        return rows[0], rows[1], (mid - half - self.s_lo) / self.s_step, (mid + half - self.s_lo) / self.s_step


def strip(pyr: Pyramid, box: np.ndarray) -> tuple[np.ndarray, Strip]:
    """The (STRIP_H, STRIP_W) float32 strip along ``box`` (intensities stretched to [0, 1])."""
    frame = Frame.of(box)
    t_lo, t_hi = frame.t0 - REACH_T * frame.length, frame.t1 + REACH_T * frame.length
    geom = Strip(frame, t_lo, (t_hi - t_lo) / (STRIP_H - 1), -REACH_S * frame.width,
                 2 * REACH_S * frame.width / (STRIP_W - 1))
    k = max(0, int(np.floor(np.log2(max(min(geom.t_step, geom.s_step), 1.0)))))
    img = pyr.level(k)
    f = 1.0 / 2 ** min(k, len(pyr.levels) - 1)
    start = frame.centre + frame.axis * t_lo + frame.normal * geom.s_lo
    m = np.array([
        [frame.normal[0] * geom.s_step * f, frame.axis[0] * geom.t_step * f, start[0] * f],
        [frame.normal[1] * geom.s_step * f, frame.axis[1] * geom.t_step * f, start[1] * f],
    ])
    out = cv2.warpAffine(img, m, (STRIP_W, STRIP_H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    lo, hi = np.percentile(out, [2, 99.5])
    return np.clip((out - lo) / max(hi - lo, 1e-3), 0, 1).astype(np.float32), geom


def run_of(logits: np.ndarray, min_len: int) -> tuple[float, float] | None:
    """Fractional first and last index of the strongest run of ``logits > 0`` (the 0.5 crossings,
    interpolated), or None when no run is ``min_len`` long."""
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    inside = np.concatenate([[False], p > 0.5, [False]])
    starts, stops = np.nonzero(inside[1:] & ~inside[:-1])[0], np.nonzero(~inside[1:] & inside[:-1])[0]
    runs = [(p[a:b].sum(), a, b - 1) for a, b in zip(starts, stops + 1) if b - a >= min_len]
    if not runs:
        return None
    _, a, b = max(runs)
    first = a - (p[a] - 0.5) / (p[a] - p[a - 1]) if a > 0 else float(a)
    last = b + (p[b] - 0.5) / (p[b] - p[b + 1]) if b + 1 < len(p) else float(b)
    return float(first), float(last)


def model_path() -> Path | None:
    """The model file: ``RAIOX_ENDS_MODEL`` from the environment, else from the settings (``.env``), else the
    shipped ends-v1; None when switched off (``none``) or missing."""
    return model_file(MODEL_ENV, "ends_model", MODEL_FILE)


def problem() -> str | None:
    """Why a configured ends model will never run (its file is missing; None otherwise): every box would keep
    the refinement's platform end, unnoticed."""
    return missing(MODEL_ENV, "ends_model")


def predict(strips: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Row and column logits, (N, STRIP_H) and (N, STRIP_W), for (N, STRIP_H, STRIP_W) strips."""
    rows, cols = session(str(path)).run(None, {"strip": strips[:, None].astype(np.float32)})
    return rows, cols


def adjust(pyr: Pyramid, boxes: list[np.ndarray], path: Path | None = None) -> list[np.ndarray]:
    """``boxes`` with their ends and width redrawn by the ends model (unchanged where it is unsure)."""
    path = path or model_path()
    if path is None or not boxes:
        return [np.asarray(b, np.float32) for b in boxes]
    cut = [strip(pyr, b) for b in boxes]
    rows, cols = predict(np.stack([s for s, _ in cut]), path)
    out = []
    for box, (_, geom), r, c in zip(boxes, cut, rows, cols):
        along, across = run_of(r, STRIP_H // 10), run_of(c, 3)
        if along is None or across is None:
            out.append(np.asarray(box, np.float32))
            continue
        own = geom.index(box)  # the input box's rows and columns
        rows_used = (along[0] if "platform" in REDRAW else own[0], along[1] if "apex" in REDRAW else own[1])
        cols_used = across if "width" in REDRAW else own[2:]
        length = (rows_used[1] - rows_used[0]) * geom.t_step
        ok = MIN_KEEP * geom.frame.length <= length <= MAX_GROW * geom.frame.length
        out.append(geom.box(rows_used, cols_used) if ok else np.asarray(box, np.float32))
    return out
