"""Canonical fixture crop: long axis vertical, platform up, padded to a fixed aspect, resampled.

The same function prepares catalog references and queries, so both land in the same frame.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_H, CROP_W = 192, 64  # model input (rows, cols); aspect 3:1
AXIAL_MARGIN = 0.06  # fraction of the fixture length kept beyond each end
LATERAL_MARGIN = 0.15  # fraction of the width kept beyond each side
ANTIALIAS_SIGMA = 0.45  # Gaussian blur before shrinking, in output pixels (sigma ANTIALIAS_SIGMA / scale on the input)


def box_frame(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Centre, unit axis (platform -> apex), length and width of an oriented box (4, 2)."""
    box = np.asarray(box, dtype=np.float64).reshape(4, 2)
    top, bottom = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
    axis = bottom - top
    length = float(np.hypot(*axis))
    if length < 1e-6:
        raise ValueError("degenerate box: platform and apex edges coincide")
    width = float((np.hypot(*(box[1] - box[0])) + np.hypot(*(box[2] - box[3]))) / 2)
    return box.mean(axis=0), axis / length, length, max(width, 1.0)


def _affine(box: np.ndarray, out_h: int, out_w: int) -> tuple[np.ndarray, float, float, float]:
    centre, (ux, uy), length, width = box_frame(box)
    scale = min(out_h / (length * (1 + 2 * AXIAL_MARGIN)), out_w / (width * (1 + 2 * LATERAL_MARGIN)))
    rot = np.array([[uy, -ux], [ux, uy]]) * scale  # maps the axis onto +y (down), no reflection
    shift = np.array([out_w / 2, out_h / 2]) - rot @ centre
    return np.hstack([rot, shift[:, None]]), scale, length, width


def canonical_crop(image: np.ndarray, box: np.ndarray, size: tuple[int, int] = (CROP_H, CROP_W)) -> np.ndarray:
    """Crop the fixture inside ``box`` (platform edge first) to a (H, W) float32 array in [0, 1].

    Outside the box plus a small margin the crop fades to 0; intensities are stretched so the
    fixture's metal is near 1 whatever the exposure.
    """
    out_h, out_w = size
    img = np.asarray(image, dtype=np.float32)
    matrix, scale, length, width = _affine(box, out_h, out_w)
    if scale < 1:  # anti-alias before shrinking: threads are fine periodic detail
        img = _blur_region(img, box, sigma=ANTIALIAS_SIGMA / scale)
    crop = cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    keep = _keep_mask(out_h, out_w, length * scale, width * scale)
    inside = crop[keep > 0.5]
    lo, hi = np.percentile(inside, [2, 99.5]) if inside.size else (0.0, 1.0)
    crop = np.clip((crop - lo) / max(hi - lo, 1e-3), 0, 1) * keep
    return crop.astype(np.float32)


def _keep_mask(out_h: int, out_w: int, length: float, width: float, feather: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    half_l = length * (0.5 + AXIAL_MARGIN)
    half_w = width * (0.5 + LATERAL_MARGIN)
    dy = half_l - np.abs(ys + 0.5 - out_h / 2)
    dx = half_w - np.abs(xs + 0.5 - out_w / 2)
    return np.clip(np.minimum(dx, dy) / feather + 0.5, 0, 1)


def _blur_region(img: np.ndarray, box: np.ndarray, sigma: float) -> np.ndarray:
    pts = np.asarray(box, dtype=np.float64).reshape(4, 2)
    centre, size = pts.mean(axis=0), np.ptp(pts, axis=0)
    pad = size * 0.3 + 4 * sigma + 2
    x0, y0 = np.maximum((centre - size / 2 - pad).astype(int), 0)
    x1, y1 = np.minimum((centre + size / 2 + pad).astype(int) + 1, [img.shape[1], img.shape[0]])
    if x1 <= x0 or y1 <= y0:
        return img
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.GaussianBlur(img[y0:y1, x0:x1], (0, 0), sigma)
    return out
