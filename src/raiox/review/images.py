"""Stored images (case X-rays, catalog references) turned into something a browser shows."""

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from raiox.kit.errors import Unprocessable
from raiox.kit.storage import get_storage

SIGNATURES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}


def sniff(data: bytes) -> str | None:
    for magic, media_type in SIGNATURES.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# 16-bit and float greys: sensors store 12-14 bits in them, which a browser (or a plain 8-bit conversion) shows
# nearly black; they are stretched over their own range as the vision package reads them
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _deep(data: bytes) -> bool:
    try:
        return Image.open(io.BytesIO(data)).mode in DEEP_MODES  # the header only
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _decode(data: bytes, filename: str | None) -> Image.Image:
    from raiox.kit.settings import get_settings

    limit = get_settings().max_pixels
    try:
        image = Image.open(io.BytesIO(data))  # the header only: deep greys are decoded once, below
        if image.width * image.height > limit:  # a small file can claim a huge picture: never decode it
            raise Unprocessable(f"cannot display this image: {image.width}x{image.height} pixels (limit {limit})")
        if image.mode not in DEEP_MODES:
            image.load()
            # upright as the vision package reads it (a phone photo's EXIF orientation): boxes are in that frame
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:  # DICOM, deep greys and other formats the vision package reads; shown as sent (no polarity flip)
        import numpy as np

        from raiox.vision import read_image

        pixels = read_image(data, filename, fix_polarity=False, max_pixels=limit)
        return Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype("uint8"), mode="L")
    except Exception as exc:  # noqa: BLE001 - any decoder failure is "cannot display"
        raise Unprocessable(f"cannot display this image: {exc}") from exc


def crop_box(size: tuple[int, int], box: list, margin: float = 0.25) -> tuple[int, int, int, int]:
    """Bounds of an oriented box ([[x, y] * 4]) widened by MARGIN of its size, clipped to the image."""
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    pad = margin * max(max(xs) - min(xs), max(ys) - min(ys))
    left, top = max(0, int(min(xs) - pad)), max(0, int(min(ys) - pad))
    right, bottom = min(size[0], int(max(xs) + pad)), min(size[1], int(max(ys) + pad))
    return (left, top, max(right, left + 1), max(bottom, top + 1))


OUTLINE = (255, 212, 0)  # the implants' boxes drawn on a film: the panel's yellow


def draw_outlines(image: Image.Image, outlines: list[tuple[list, str]]) -> Image.Image:
    """IMAGE (RGB) with each oriented box ([[x, y] * 4]) outlined and its label beside its first (platform) corner."""
    from PIL import ImageDraw, ImageFont

    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    side = max(image.size)
    width, font = max(2, round(side / 300)), ImageFont.load_default(size=max(16, round(side / 18)))
    for box, label in outlines:
        points = [(float(x), float(y)) for x, y in box]
        draw.line([*points, points[0]], fill=OUTLINE, width=width, joint="curve")
        (x0, y0), (x1, y1) = points[0], points[1]
        draw.text(((x0 + x1) / 2 + 2 * width, max(0.0, (y0 + y1) / 2 - font.size - width)), label, fill=OUTLINE,
                  font=font, stroke_width=max(1, width // 2), stroke_fill=(0, 0, 0))
    return image


def to_browser(data: bytes, filename: str | None = None, *, max_side: int | None = None,
               fmt: str = "PNG", crop: list | None = None, outlines: list | None = None) -> tuple[bytes, str]:
    """Bytes as-is when the browser can show them (and no resize/crop/outline is asked), else a PNG/JPEG rendition.
    OUTLINES: (box, label) pairs drawn on the picture (``draw_outlines``)."""
    media_type = sniff(data)
    if media_type and max_side is None and crop is None and not outlines and not _deep(data):
        return data, media_type
    image = _decode(data, filename)
    if outlines:
        image = draw_outlines(image, outlines)
    if crop:
        image = image.crop(crop_box(image.size, crop))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue(), f"image/{fmt.lower()}"


async def load(storage_key: str, filename: str | None = None, **kwargs) -> tuple[bytes, str]:
    """The stored image as the browser gets it; decoding and resizing run in a worker thread (the event loop keeps
    serving meanwhile)."""
    import asyncio

    data = await get_storage().get(storage_key)
    return await asyncio.to_thread(to_browser, data, filename, **kwargs)
