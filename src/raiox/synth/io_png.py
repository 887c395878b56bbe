"""PNG encoding of float images."""

from __future__ import annotations

import cv2
import numpy as np


def to_png(image: np.ndarray, *, bits: int = 8) -> bytes:
    """Encode a float image in [0, 1] (or an integer image) as a grayscale PNG (8 or 16 bit)."""
    img = np.asarray(image)
    if img.dtype.kind == "f":
        top = 65535 if bits == 16 else 255
        img = (np.clip(img, 0, 1) * top + 0.5).astype(np.uint16 if bits == 16 else np.uint8)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
