"""Reading radiographs: any supported file -> float32 HxW in [0, 1], metal bright.

Supported: JPEG, PNG, WEBP, TIFF (8/16-bit, float), BMP, GIF (first frame), AVIF, JPEG 2000, HEIC/HEIF (phone
photos, through pillow-heif) via Pillow with
EXIF orientation applied, and DICOM through pydicom (modality LUT: rescale slope/intercept, VOI
LUT or window centre/width, MONOCHROME1 inversion; uncompressed, RLE, JPEG Baseline, Extended 12-bit
and Lossless, JPEG-LS and JPEG 2000 pixel data, the compressed ones through pylibjpeg). Everything else is refused
with an ``ImageDecodeError`` (HTTP 422) whose message says why. Inverted polarity is detected and flipped
(see ``polarity``) unless the file is DICOM, whose photometric interpretation is trusted.

``metadata_free`` gives a file's picture without its metadata (EXIF, ICC, text chunks; DICOM patient, study and
device attributes), encoded so that ``read_image`` reads exactly the same pixels from it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from raiox.kit.errors import Unprocessable, first_line

from .polarity import normalise_polarity

try:  # HEIC/HEIF: what iPhones save by default
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF = True
except ImportError:  # pragma: no cover - the dependency is declared; keep a clear error without it
    _HEIF = False

MAX_PIXELS = 60_000_000  # default cap: far above any dental sensor or panoramic (RAIOX_MAX_PIXELS)
# Pillow's own decompression-bomb guard stays on as a backstop above any sensible cap; the
# per-call ``max_pixels`` check (from the header, before decoding) is the one that applies.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 250_000_000)


class ImageDecodeError(Unprocessable):
    """The upload is not a radiograph we can read; ``str(err)`` says why."""

    code = "image_decode_error"


def read_image(data: bytes, filename: str | None = None, *, max_pixels: int = MAX_PIXELS,
               fix_polarity: bool = True) -> np.ndarray:
    """Decode ``data`` into a normalised grayscale radiograph (float32, [0, 1], metal bright)."""
    _check_payload(data)
    dicom = _has_dicom_preamble(data)
    if dicom:
        img = _read_dicom(data, max_pixels)
    else:
        try:
            img = _read_pillow(data, max_pixels)
        except ImageDecodeError as exc:
            # a DICOM stream without the 128-byte preamble (seen from some exporters)
            if not (str(exc).endswith("unrecognised file format") and _looks_like_dicom(data, filename)):
                raise
            dicom = True
            img = _read_dicom(data, max_pixels)
    if img.shape[0] < 8 or img.shape[1] < 8:
        raise ImageDecodeError(f"image too small: {img.shape[1]}x{img.shape[0]} pixels")
    # DICOM states its polarity (MONOCHROME1/2); other formats are checked by the image itself
    return normalise_polarity(img) if fix_polarity and not dicom else img


def metadata_free(data: bytes, filename: str | None = None, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """(bytes, media type) of DATA's picture with none of its metadata, for keeping: ``read_image`` reads from it
    exactly the pixels it reads from DATA (so a box or an embedding of the one fits the other).

    A DICOM file keeps only what its pixels are read with (image pixel module, rescale, window, LUTs, presentation
    shape), under a new instance UID derived from DATA: no patient, study, series, institution, device or private
    attribute is left. Anything else becomes a PNG of the grey levels ``read_image`` takes from it (8-bit, or 16-bit
    for 16-bit greys; a 32-bit integer or float one a bare TIFF), upright: no EXIF (GPS, camera, serial number,
    author), ICC profile, XMP or text chunk. Refused as ``read_image`` refuses (``ImageDecodeError``)."""
    _check_payload(data)
    if _has_dicom_preamble(data):
        return _bare_dicom(data), "application/dicom"
    try:
        with _pillow_errors(max_pixels):
            im = _open_pillow(data, max_pixels)
            return _bare_picture(im)
    except ImageDecodeError as exc:
        if not (str(exc).endswith("unrecognised file format") and _looks_like_dicom(data, filename)):
            raise
        return _bare_dicom(data), "application/dicom"


def _check_payload(data: bytes) -> None:
    if not data:
        raise ImageDecodeError("not an image: empty file")
    kind = sniff(data)
    if kind is not None:
        raise ImageDecodeError(f"not an image: {kind}")


def _bare_picture(im: Image.Image) -> tuple[bytes, str]:
    """IM's grey levels as ``_to_gray`` reads them, in a new image (nothing of the file's ``info`` carried over)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        bare, fmt = Image.fromarray(np.asarray(im).astype(np.uint16)), "PNG"
    elif im.mode in DEEP_MODES:  # 32-bit integers or floats: PNG cannot hold them
        bare, fmt = Image.fromarray(np.asarray(im).astype(np.int32 if im.mode == "I" else np.float32)), "TIFF"
    else:
        grey = _gray8(im)
        bare, fmt = Image.frombytes("L", grey.size, grey.tobytes()), "PNG"
    out = io.BytesIO()
    bare.save(out, format=fmt)
    return out.getvalue(), f"image/{fmt.lower()}"


# what `_read_dicom` reads the pixels with; everything else (patient, study, equipment, dates, private tags) is left out
DICOM_PIXEL_ATTRIBUTES = (
    "Modality", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "Rows", "Columns",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames", "PixelAspectRatio",
    "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction",
    "PresentationLUTShape", "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "PixelData",
)
DICOM_LUT_ATTRIBUTES = ("LUTDescriptor", "LUTData", "ModalityLUTType")  # of a modality or VOI LUT sequence's items


def _bare_dicom(data: bytes) -> bytes:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageDecodeError(f"corrupt DICOM file: {exc}") from None
    if "PixelData" not in ds:
        raise ImageDecodeError("DICOM file has no image (no PixelData)")
    try:
        bare = Dataset()
        for keyword in DICOM_PIXEL_ATTRIBUTES:
            if keyword in ds:
                bare.add(ds[keyword])
        for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
            if keyword in ds:
                setattr(bare, keyword, Sequence([_only(item, DICOM_LUT_ATTRIBUTES) for item in ds[keyword].value]))
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is None:  # a bare data set (no file meta): written as it was read
            implicit, little = ds.original_encoding
            syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        bare.SOPClassUID = str(ds.get("SOPClassUID") or "1.2.840.10008.5.1.4.1.1.7")  # else: secondary capture
        bare.SOPInstanceUID = generate_uid(entropy_srcs=[hashlib.sha256(data).hexdigest()])  # same file, same UID
        bare.file_meta = FileMetaDataset()
        bare.file_meta.TransferSyntaxUID = syntax
        bare.file_meta.MediaStorageSOPClassUID = bare.SOPClassUID
        bare.file_meta.MediaStorageSOPInstanceUID = bare.SOPInstanceUID
        out = io.BytesIO()
        bare.save_as(out, enforce_file_format=True)
    except Exception as exc:  # a malformed attribute or an encoding pydicom cannot write back
        raise ImageDecodeError(f"cannot copy the DICOM image without its metadata: {type(exc).__name__}: "
                               f"{first_line(exc)}") from None
    return out.getvalue()


def _only(item, keywords: tuple[str, ...]):
    from pydicom.dataset import Dataset

    kept = Dataset()
    for keyword in keywords:
        if keyword in item:
            kept.add(item[keyword])
    return kept


def sniff(data: bytes) -> str | None:
    """A human-readable kind for well-known non-image payloads, or None."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and b"<html" in head):
        what = "HTML page"
        if b"jotform" in data[:200_000].lower() or b"login" in data[:200_000].lower():
            what += " (a login or form page was downloaded instead of the file)"
        return what
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "SVG/XML document" if b"<svg" in head else "XML document"
    if head.startswith(b"%pdf"):
        return "PDF document"
    if head.startswith((b"{", b"[")):
        return "JSON text"
    if head.startswith(b"pk\x03\x04"):
        return "ZIP archive (or Office document)"
    if head.startswith(b"\x1f\x8b"):
        return "gzip archive"
    if not _HEIF and data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "HEIC photo (support not installed: send JPEG or PNG)"
    return None


def _has_dicom_preamble(data: bytes) -> bool:
    return len(data) > 132 and data[128:132] == b"DICM"


def _looks_like_dicom(data: bytes, filename: str | None) -> bool:
    if filename and filename.lower().endswith((".dcm", ".dicom")):
        return True
    return data[:2] in (b"\x08\x00", b"\x02\x00")  # a group 0008 / 0002 tag first


@contextmanager
def _pillow_errors(max_pixels: int) -> Iterator[None]:
    """Pillow's failures while opening or decoding, as ``ImageDecodeError``s saying why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image: unrecognised file format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's backstop, on opening
        raise ImageDecodeError(f"image too large: over {Image.MAX_IMAGE_PIXELS} pixels "
                               f"(limit {max_pixels})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None


def _open_pillow(data: bytes, max_pixels: int) -> Image.Image:
    """The first frame, decoded and upright (EXIF orientation applied); call inside ``_pillow_errors``."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if w * h > max_pixels:
        raise ImageDecodeError(f"image too large: {w}x{h} pixels (limit {max_pixels})")
    im.seek(0)
    im.load()
    return ImageOps.exif_transpose(im)


def _read_pillow(data: bytes, max_pixels: int) -> np.ndarray:
    with _pillow_errors(max_pixels):
        return _to_gray(_open_pillow(data, max_pixels))


DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # read by their own range (``_stretch``)


def _to_gray(im: Image.Image) -> np.ndarray:
    if im.mode in DEEP_MODES:
        return _stretch(np.asarray(im).astype(np.float32))
    im = _gray8(im)
    low, high = im.getextrema()
    if low == high:  # as a 16-bit one is (``_stretch``): no radiograph is one grey level
        raise ImageDecodeError(f"image is blank (every pixel is {low})")
    pixels = np.array(im, np.float32)
    pixels /= 255.0  # in place: the same values as a division into a new array, one array less at the pixel cap
    return pixels


def _gray8(im: Image.Image) -> Image.Image:
    """An 8-bit image's grey levels (mode L): transparency composited on black, colour as luminance."""
    try:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
        if im.mode != "L":
            im = im.convert("L")
    except ValueError:  # e.g. a LAB or HSV TIFF: Pillow has no way to grey
        raise ImageDecodeError(f"unsupported colour mode {im.mode}: send a grayscale or RGB image") from None
    return im


def _stretch(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Map a high-bit-depth array to [0, 1] by its robust range."""
    finite = np.isfinite(arr)
    if not finite.any():
        raise ImageDecodeError("image is blank (no finite pixel value)")
    if not finite.all():
        arr = np.where(finite, arr, np.nanmin(np.where(finite, arr, np.inf)))
    if lo is None or hi is None:
        sample = arr[:: max(1, arr.shape[0] // 512), :: max(1, arr.shape[1] // 512)]
        lo, hi = np.percentile(sample, [0.05, 99.95])
    if hi - lo < 1e-9:
        raise ImageDecodeError("image is blank (a single grey level)")
    out = np.subtract(arr, np.float32(lo), dtype=np.float32)  # one float32 array, worked in place: at the pixel cap
    out /= np.float32(hi - lo)  # each float64 temporary would take half a gigabyte
    return np.clip(out, 0, 1, out=out)


def _read_dicom(data: bytes, max_pixels: int) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageDecodeError(f"corrupt DICOM file: {exc}") from None
    if "PixelData" not in ds:
        raise ImageDecodeError("DICOM file has no image (no PixelData)")
    try:
        return _dicom_pixels(ds, max_pixels)
    except ImageDecodeError:
        raise
    except Exception as exc:  # a malformed attribute (frames, rescale, window...): pydicom and numpy raise anything
        raise ImageDecodeError(f"corrupt DICOM file: {type(exc).__name__}: {first_line(exc)}") from None


def _dicom_pixels(ds, max_pixels: int) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols > max_pixels:
        raise ImageDecodeError(f"image too large: {cols}x{rows} pixels (limit {max_pixels})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_encapsulated(ds, frames, rows, cols, max_pixels)
    try:  # only the first frame of a multi-frame object (e.g. a CBCT volume) is decoded
        arr = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", ts)
        raise ImageDecodeError(f"cannot decode DICOM pixel data ({name}): {exc}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if arr.ndim == 3:  # colour DICOM (e.g. a screenshot): luminance
        gray = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return _stretch(gray, 0.0, 255.0 if arr.dtype == np.uint8 else float(arr.max()))
    arr = _or_unchanged(apply_modality_lut, arr, ds)
    windowed = "WindowCenter" in ds or "VOILUTSequence" in ds
    if windowed:
        windowed_arr = _or_unchanged(apply_voi_lut, arr, ds, index=0)
        windowed, arr = windowed_arr is not arr, windowed_arr
    arr = np.asarray(arr, np.float32)
    if windowed:
        lo, hi = float(arr.min()), float(arr.max())
        img = _stretch(arr, lo, hi if hi > lo else lo + 1)
    else:
        img = _stretch(arr)
    inverse = str(ds.get("PresentationLUTShape", "IDENTITY")).upper() == "INVERSE"
    if (photometric == "MONOCHROME1") != inverse:  # either one inverts; both cancel
        img = 1.0 - img
    return img


def _or_unchanged(lut, arr: np.ndarray, ds, **kw) -> np.ndarray:
    """ARR through a DICOM LUT, or ARR itself when the file's LUT attributes are malformed (a width of 0, text where a
    number belongs): the pixels are still a radiograph, read by their own range instead."""
    try:
        return lut(arr, ds, **kw)
    except Exception:
        return arr


def _check_encapsulated(ds, frames: int, rows: int, cols: int, max_pixels: int) -> None:
    """A compressed frame is decoded at the size its own stream states, whatever Rows/Columns say: read that size
    from the stream's header first and refuse a frame over MAX_PIXELS or unlike the header (a decompression bomb)."""
    from pydicom.encaps import get_frame

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_encapsulated:
        return
    try:
        frame = get_frame(ds.PixelData, 0, number_of_frames=frames)
    except Exception:  # fragments pydicom cannot split here: its decoder says what is wrong, if anything
        return
    size = _stream_size(frame)
    if size is None:
        return  # a codec whose header we cannot read (RLE: decoded into Rows x Columns, bounded above)
    w, h = size
    if w * h > max_pixels:
        raise ImageDecodeError(f"image too large: compressed frame of {w}x{h} pixels (limit {max_pixels})")
    if (w, h) != (cols, rows):
        raise ImageDecodeError(f"corrupt DICOM file: compressed frame is {w}x{h} pixels, header says {cols}x{rows}")


def _stream_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG / JPEG 2000 / JPEG-LS codestream's header, without decoding it."""
    try:
        with Image.open(io.BytesIO(frame)) as im:
            return im.size
    except Exception:
        pass
    import libjpeg  # JPEG-LS and lossless JPEG, which Pillow cannot open (pylibjpeg, pydicom's decoders)
    import openjpeg

    for get_parameters in (libjpeg.get_parameters, openjpeg.get_parameters):
        try:
            params = get_parameters(frame)
            return int(params["columns"]), int(params["rows"])
        except Exception:
            continue
    return None
