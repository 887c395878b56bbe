"""Detector and display chain: exposure, blur, noise, gamma/contrast, marks, text, JPEG."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np


def expose(density: np.ndarray, rng: np.random.Generator, cond: dict) -> np.ndarray:
    """Optical density -> displayed brightness in [0, 1] (metal bright).

    A processed digital radiograph is close to linear in optical density (the log of the
    transmitted intensity), windowed between soft tissue and metal, with a soft shoulder.
    """
    lo = float(rng.uniform(0.15, 0.4))
    hi = float(rng.uniform(2.4, 3.6))
    t = np.linspace(0.0, 1.25, 1024, dtype=np.float32)
    curve = np.where(t < 0.85, t, 0.85 + 0.15 * (1 - np.exp(-(t - 0.85) / 0.15)))
    curve = np.clip(curve, 0, 1) ** cond.get("gamma", 1.0)
    curve = np.clip(0.5 + (curve - 0.5) * cond.get("contrast", 1.0), 0, 1).astype(np.float32)
    idx = (density - lo) * np.float32(1023 / 1.25 / (hi - lo))
    np.clip(idx, 0, 1023, out=idx)
    return curve[idx.astype(np.int32)]


def sensor_marks(img: np.ndarray, rng: np.random.Generator) -> None:
    """Rounded sensor corners, an orientation dot and a few scratches, in place."""
    h, w = img.shape
    r = int(min(h, w) * float(rng.uniform(0.04, 0.1)))
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (r, 0), (w - r, h), 255, -1)
    cv2.rectangle(mask, (0, r), (w, h - r), 255, -1)
    for cx, cy in ((r, r), (w - r, r), (r, h - r), (w - r, h - r)):
        cv2.circle(mask, (cx, cy), r, 255, -1)
    img[mask == 0] = float(rng.uniform(0.0, 0.08))
    if rng.random() < 0.7:
        cx = int(r + rng.uniform(0.2, 1.0) * r)
        cy = int(r + rng.uniform(0.2, 1.0) * r)
        if rng.random() < 0.5:
            cx = w - cx
        cv2.circle(img, (cx, cy), max(3, r // 6), float(rng.uniform(0.0, 0.15)), -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (p0[0] + int(rng.integers(-w // 3, w // 3)), p0[1] + int(rng.integers(-h // 8, h // 8)))
        cv2.line(img, p0, p1, float(rng.uniform(0.0, 1.0)), 1, cv2.LINE_AA)


def burn_text(img: np.ndarray, rng: np.random.Generator) -> None:
    """Burned-in annotations: date, tooth number, ruler ticks, in place."""
    h, w = img.shape
    scale = min(h, w) / 700
    val = float(rng.choice([0.0, 1.0, 0.9]))
    ink = np.zeros((h, w), np.uint8)
    lines = [f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/20{int(rng.integers(15, 27))}",
             f"{int(rng.integers(11, 49))}", "R" if rng.random() < 0.5 else "L", f"{int(rng.integers(60, 71))}kV"]
    for i, text in enumerate(lines[: int(rng.integers(1, 5))]):
        x = int(rng.uniform(0.03, 0.7) * w)
        y = int(rng.uniform(0.05, 0.95) * h)
        cv2.putText(ink, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale * float(rng.uniform(0.6, 1.3)), 255,
                    max(1, int(2 * scale)), cv2.LINE_AA)
    if rng.random() < 0.3:  # mm ruler
        x0, y0 = int(0.05 * w), int(0.9 * h)
        step = int(max(4, min(h, w) / 60))
        for k in range(10):
            cv2.line(ink, (x0 + k * step, y0), (x0 + k * step, y0 - (step if k % 5 == 0 else step // 2)), 255, 1)
    a = ink.astype(np.float32) / 255.0
    img *= 1 - a
    img += a * val


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(11).standard_normal((2048, 2048), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit Gaussian noise: a random window of a fixed bank (flipped at random), or fresh noise
    for images larger than the bank."""
    h, w = shape
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w), dtype=np.float32)
    y, x = int(rng.integers(bank.shape[0] - h + 1)), int(rng.integers(bank.shape[1] - w + 1))
    win = bank[y:y + h, x:x + w]
    if rng.random() < 0.5:
        win = win[::-1]
    if rng.random() < 0.5:
        win = win[:, ::-1]
    return np.ascontiguousarray(win)


def sharpen(img: np.ndarray, amount: float, radius: float) -> np.ndarray:
    """Sensor-software unsharp masking: crisper edges, dark halos around metal, amplified noise."""
    return img + np.float32(amount) * (img - cv2.GaussianBlur(img, (0, 0), radius))


def photograph(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A phone photo of the radiograph on a monitor or light box: perspective, vignetting, glare,
    moire, softer focus. Returns the photo (same size) and the 3x3 homography image -> photo."""
    h, w = img.shape
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    jitter = rng.uniform(-0.06, 0.06, size=(4, 2)) * np.float32([w, h])
    inset = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * np.float32([w, h]) * float(rng.uniform(0.02, 0.08))
    dst = (src + inset + jitter).astype(np.float32)
    hom = cv2.getPerspectiveTransform(src, dst)
    bg = float(rng.uniform(0.0, 0.25))
    out = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=bg)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = float(rng.uniform(0.2, 0.8)) * w, float(rng.uniform(0.2, 0.8)) * h
    r2 = ((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2
    out = out * (1 - float(rng.uniform(0.1, 0.4)) * r2) + float(rng.uniform(0.0, 0.15)) * np.exp(-r2 * 8)
    if rng.random() < 0.5:  # moire from the monitor's pixel grid
        period = float(rng.uniform(3, 9))
        ang = float(rng.uniform(0, np.pi))
        out += 0.03 * np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * (2 * np.pi / period))
    out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), float(rng.uniform(0.5, 1.5)))
    return np.clip(out, 0, 1).astype(np.float32), hom


def degrade(density: np.ndarray, rng: np.random.Generator, cond: dict, ppm: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Density -> final image; also the homography applied by a simulated photo (or None)."""
    img = expose(density, rng, cond)
    blur = cond.get("blur", 0.0)
    if blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    motion = cond.get("motion", 0.0)
    if motion >= 1.0:  # patient or tube movement during the exposure: a short line kernel
        n = int(round(motion)) * 2 + 1
        kernel = np.zeros((n, n), np.float32)
        a = float(rng.uniform(0, np.pi))
        c, d = n // 2, n // 2
        cv2.line(kernel, (int(round(c - d * math.cos(a))), int(round(c - d * math.sin(a)))),
                 (int(round(c + d * math.cos(a))), int(round(c + d * math.sin(a)))), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    noise = cond.get("noise", 0.0)
    if noise > 0:
        h, w = img.shape
        # quantum noise grows with attenuation (fewer photons behind bright structures)
        sig = cv2.sqrt(np.maximum(img, np.float32(0.02)))
        sig *= np.float32(noise / math.sqrt(0.5))
        grain = _noise(rng, (h, w))
        grain *= np.float32(0.75)
        coarse = cv2.resize(_noise(rng, (h // 2 + 1, w // 2 + 1)), (w, h))
        grain += coarse * np.float32(0.5)
        grain *= sig
        img = img + grain
    if cond.get("sharpen", 0) > 0:
        img = sharpen(img, cond["sharpen"], float(rng.uniform(2.0, 6.0)) * max(ppm / 30.0, 0.3))
    img = np.clip(img, 0, 1).astype(np.float32)
    if cond.get("marks"):
        sensor_marks(img, rng)
    if cond.get("text"):
        burn_text(img, rng)
    hom = None
    if cond.get("photo"):
        img, hom = photograph(img, rng)
    scale = cond.get("resample", 1.0)
    if 0.05 < scale < 0.99:  # sent through a messaging app: shrunk, then enlarged again for display
        h, w = img.shape
        small = cv2.resize(img, (max(8, int(w * scale)), max(8, int(h * scale))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    q = cond.get("jpeg")
    if q:
        ok, buf = cv2.imencode(".jpg", (img * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    if cond.get("invert"):
        img = 1.0 - img
    return img, hom
