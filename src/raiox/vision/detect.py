"""Find implant fixtures in a radiograph as oriented boxes (classical CV).

Bright metal is thresholded and split into connected components. Each component is
straightened along its principal axis and read row by row: fixture rows have a threaded
(serrated) outline; abutments and healing caps are smooth and usually narrower; crowns are much
wider; fillings, text and sensor marks are small, thin or not elongated. The platform end is the
one where other metal continues (abutment, crown), else the wider end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WORK_SIDE = 800  # images are analysed with their longer side at most this many pixels


@dataclass
class Detection:
    box: np.ndarray  # (4, 2) [x, y]; box[0], box[1] platform edge; box[2], box[3] apex edge
    confidence: float
    ends: float | None = None  # how clearly the learned localiser's maps put the platform at box[0:2], -2..2
    # (`locator.end_evidence`); None where not measured (classical localiser, a given box)


def locate(image: np.ndarray, method: str = "auto") -> list[Detection]:
    """Every implant fixture in ``image`` (HxW float in [0, 1], metal bright), most confident first.

    ``method``: "learned" (the shipped ONNX localiser), "classical" (thresholds and outlines) or
    "auto" (learned when its model is shipped).
    """
    from raiox.vision import locator

    if method == "learned" or (method == "auto" and locator.model_path() is not None):
        return locator.locate_learned(image)
    return locate_classical(image)


def localiser_id() -> str:
    """Which localiser `locate(image)` uses: the shipped model's name (its file's stem) and, from the second
    revision on, the revision of the post-processing that draws its boxes (`locator.BOXES_REVISION`), as
    "locator-v2.r4"; else "classical". A reference boxed under another id is located again by
    `raiox catalog reindex --relocate`."""
    from raiox.vision import locator

    if locator.model_path() is None:
        return "classical"
    stem = Path(locator.MODEL_FILE).stem
    return stem if locator.BOXES_REVISION == 1 else f"{stem}.r{locator.BOXES_REVISION}"


def locate_classical(image: np.ndarray, min_confidence: float = 0.3) -> list[Detection]:
    """Classical localisation: bright metal components read row by row along their axis."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        return []
    factor = min(1.0, WORK_SIDE / max(img.shape))
    small = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else img
    small = cv2.GaussianBlur(small, (0, 0), 0.7)
    found = []
    for mask in _metal_components(small):
        det = _read_component(small, mask)
        if det is not None and det.confidence >= min_confidence:
            found.append(Detection(det.box / factor, det.confidence))
    return sorted(found, key=lambda d: -d.confidence)


def _metal_components(img: np.ndarray) -> list[np.ndarray]:
    upper = img[img > np.median(img)]
    if upper.size < 16 or np.ptp(upper) < 0.05:
        return []
    level, _ = cv2.threshold((upper * 255).astype(np.uint8).reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (img * 255 > level).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = img.size * 0.0015
    return [labels == i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]


@dataclass
class _Strip:
    rows: np.ndarray  # (n,) axial coordinate of each row (pixels, along the principal axis)
    left: np.ndarray  # (n,) outline positions across the axis
    right: np.ndarray
    centre: np.ndarray  # (2,) component centroid
    axis: np.ndarray  # (2,) unit principal axis
    normal: np.ndarray


def _strip(mask: np.ndarray) -> _Strip | None:
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(np.float64)
    centre = pts.mean(0)
    evals, evecs = np.linalg.eigh(np.cov((pts - centre).T))
    axis = evecs[:, 1]
    normal = np.array([-axis[1], axis[0]])
    t = np.round((pts - centre) @ axis).astype(int)
    s = (pts - centre) @ normal
    t0 = t.min()
    n = t.max() - t0 + 1
    if n < 8:
        return None
    left = np.full(n, np.inf)
    right = np.full(n, -np.inf)
    np.minimum.at(left, t - t0, s)
    np.maximum.at(right, t - t0, s)
    ok = np.isfinite(left)
    rows = np.arange(n) + t0
    left = np.interp(rows, rows[ok], left[ok])
    right = np.interp(rows, rows[ok], right[ok])
    return _Strip(rows.astype(np.float64), left, right, centre, axis, normal)


def _smooth(x: np.ndarray, win: int) -> np.ndarray:
    win = max(3, win | 1)
    pad = np.pad(x, win // 2, mode="edge")
    return np.convolve(pad, np.ones(win) / win, mode="valid")


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def _detrend(x: np.ndarray, win: int) -> np.ndarray:
    """Residual of ``x`` from a sliding quadratic fit (Savitzky-Golay), blind to smooth curvature."""
    win = max(5, win | 1)
    k = np.arange(win) - win // 2
    coef = np.linalg.pinv(np.vander(k, 3))[-1]  # value of the local fit at the window centre
    fit = np.convolve(np.pad(x, win // 2, mode="edge"), coef[::-1], mode="valid")
    return x - fit


def _crossings(res: np.ndarray, level: float = 0.7) -> np.ndarray:
    """1 where the residual swings across zero by more than ``level`` on both sides."""
    sig = np.where(res > level, 1.0, np.where(res < -level, -1.0, 0.0))
    idx = np.where(sig != 0, np.arange(len(sig)), 0)
    filled = sig[np.maximum.accumulate(idx)]
    return np.concatenate([[0.0], (filled[1:] * filled[:-1] < 0).astype(float)])


def _read_component(img: np.ndarray, mask: np.ndarray) -> Detection | None:
    strip = _strip(mask)
    if strip is None:
        return None
    width = np.maximum(strip.right - strip.left, 0)
    win = max(7, int(np.median(width) * 0.5))
    res_l, res_r = _detrend(strip.left, win), _detrend(strip.right, win)
    rough = _smooth(np.abs(res_l) + np.abs(res_r), win)
    waves = _smooth(_crossings(res_l) + _crossings(res_r), 2 * win) * 2 * win
    cand = (rough > 0.8) & (waves >= 4)
    if cand.any():
        cand &= width < 1.5 * np.median(width[cand])
    threaded = _smooth(cand.astype(float), win) > 0.5
    runs = [r for r in _runs(threaded) if r[1] - r[0] >= 2 * win]
    if not runs:
        return None
    a, b = max(runs, key=lambda r: r[1] - r[0])
    inside = np.nonzero(cand[a:b])[0]
    a, b = a + inside[0], a + inside[-1] + 1  # undo the smoothing spill at both ends
    body_w = float(np.median(width[a:b]))
    top_first = _platform_first(width, a, b, body_w)
    a, b = _extend(width, a, b, body_w, top_first)
    a, b = _cut_platform(width, a, b, body_w, win, top_first)
    length = b - a
    if not (0.9 * body_w <= length <= 9 * body_w) or body_w < 6:
        return None
    centre_s = float(np.median((strip.left[a:b] + strip.right[a:b]) / 2))
    half = float(np.percentile(width[a:b], 95)) / 2 + 1
    ends = (strip.rows[a], strip.rows[b - 1]) if top_first else (strip.rows[b - 1], strip.rows[a])
    sign = 1 if top_first else -1
    corner = lambda t, side: strip.centre + strip.axis * t + strip.normal * (centre_s + side * half)
    box = np.array([corner(ends[0], -sign), corner(ends[0], sign), corner(ends[1], sign), corner(ends[1], -sign)])
    score = float(np.mean(threaded[a:b])) * min(1.0, float(np.median(rough[a:b])) / 1.2)
    aspect_ok = 1.0 if 1.1 <= length / body_w <= 7 else 0.5
    return Detection(box.astype(np.float32), round(min(1.0, 0.15 + 0.85 * score) * aspect_ok, 4))


def _extend(width: np.ndarray, a: int, b: int, body_w: float, top_first: bool) -> tuple[int, int]:
    """Grow the threaded run over smooth fixture parts: a collar at the platform, the apex tip."""
    lo_a, lo_b = (0.8, 0.1) if top_first else (0.1, 0.8)
    fits = lambda i, j, lo: lo * body_w <= width[i] <= 1.3 * body_w and abs(width[i] - width[j]) < 0.12 * body_w
    while a > 1 and fits(a - 1, a + 1, lo_a):
        a -= 1
    while b < len(width) - 1 and fits(b, b - 2, lo_b):
        b += 1
    return a, b


def _cut_platform(width: np.ndarray, a: int, b: int, body_w: float, win: int, top_first: bool) -> tuple[int, int]:
    """Walk from mid-fixture towards the platform; stop where the outline leaves fixture width
    (an abutment or healing cap is narrower, a crown wider)."""
    k = max(1, win // 4)
    smooth = np.array([np.median(width[max(0, i - k) : i + k + 1]) for i in range(len(width))])
    major = float(np.percentile(smooth[a:b], 90))  # platform-side major diameter
    ok = (smooth >= 0.82 * major) & (smooth <= 1.3 * major)
    mid = (a + b) // 2
    if top_first:
        i = mid
        while i > a and ok[i - 1]:
            i -= 1
        return i, b
    i = mid
    while i < b - 1 and ok[i + 1]:
        i += 1
    return a, i + 1


def _platform_first(width: np.ndarray, a: int, b: int, body_w: float) -> bool:
    """True when the platform is at the low-row end of the run [a, b)."""
    before, after = width[:a], width[b:]
    metal_before = np.sum(before > 0.3 * body_w)
    metal_after = np.sum(after > 0.3 * body_w)
    if abs(metal_before - metal_after) > 0.1 * body_w:
        return bool(metal_before > metal_after)
    k = max(2, (b - a) // 6)
    return bool(np.mean(width[a : a + k]) >= np.mean(width[b - k : b]))


def orient_box(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """Oriented (4, 2) box for an axis-aligned manual box: long side as the axis, the wider
    metal end as the platform (top or left when the metal gives no clue)."""
    img = np.asarray(image, dtype=np.float32)
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    x0, x1 = sorted((max(x0, 0), min(x1, img.shape[1])))
    y0, y1 = sorted((max(y0, 0), min(y1, img.shape[0])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"box too small or outside the image: {list(map(float, xyxy))}")
    tl, tr, br, bl = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    vertical = (y1 - y0) >= (x1 - x0)
    box = np.array([tl, tr, br, bl]) if vertical else np.array([bl, tl, tr, br])  # platform top / left
    roi = img[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
    level, _ = cv2.threshold((roi * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    width = ((roi * 255) > level).sum(axis=1 if vertical else 0).astype(float)
    k = max(1, len(width) // 4)
    if width[-k:].mean() > width[:k].mean() * 1.05:
        box = reverse_box(box)
    return box


def reverse_box(box: np.ndarray) -> np.ndarray:
    """The same oriented box with its platform and apex edges swapped (the crop turns 180 degrees)."""
    return np.asarray(box)[[2, 3, 0, 1]]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex quadrilaterals (4, 2)."""
    pa = cv2.convexHull(np.asarray(a, np.float32).reshape(4, 2))
    pb = cv2.convexHull(np.asarray(b, np.float32).reshape(4, 2))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = cv2.contourArea(pa) + cv2.contourArea(pb) - inter
    return float(inter / union) if union > 0 else 0.0
