"""raiox.review.images.to_browser: what the panel sends the browser for each kind of upload."""

import io

import numpy as np
import pytest
from PIL import Image

from raiox.kit.errors import Unprocessable
from raiox.review.images import to_browser
from raiox.vision import read_image


def _ramp(height=120, width=200, top=4095):
    """A 12-bit horizontal ramp, as a sensor stores it in 16-bit containers."""
    return np.tile(np.linspace(0, top, width), (height, 1)).round().astype(np.uint16)


def _save(array_or_image, fmt, **kw) -> bytes:
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _shown(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)


def test_an_8bit_jpeg_goes_as_it_is():
    data = _save((np.random.default_rng(0).random((50, 80)) * 255).astype(np.uint8), "JPEG")
    assert to_browser(data, "x.jpg") == (data, "image/jpeg")


@pytest.mark.parametrize("fmt,max_side", [("PNG", None), ("PNG", 100), ("TIFF", None), ("TIFF", 100)])
def test_12bit_data_in_16bit_files_is_shown_over_its_own_range(fmt, max_side):
    """A 16-bit PNG or TIFF holding 12 bits would show nearly black as it is (or divided by 256)."""
    out, media_type = to_browser(_save(_ramp(), fmt), f"sensor.{fmt.lower()}", max_side=max_side)
    assert media_type == "image/png"
    shown = _shown(out)
    assert shown.max() > 240 and shown.min() < 15
    assert np.corrcoef(shown.mean(0), np.arange(shown.shape[1]))[0, 1] > 0.99


def test_a_phone_photo_is_turned_upright_as_the_vision_package_reads_it():
    pixels = np.zeros((100, 200), np.uint8)
    pixels[:, :40] = 255  # a bright band at the left of the stored pixels
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    data = _save(image, "JPEG", exif=exif.tobytes())
    upright = read_image(data, fix_polarity=False)
    assert upright.shape == (200, 100)
    thumb, _ = to_browser(data, "IMG_0001.jpg", max_side=1000)
    assert _shown(thumb).shape == upright.shape
    # a fixture box in read_image's frame crops the same pixels: the band is at the top after the turn
    box = [[0, 0], [100, 0], [100, 30], [0, 30]]
    crop, _ = to_browser(data, "IMG_0001.jpg", crop=box)
    assert _shown(crop)[:20].mean() > 200


def test_dicom_is_rendered_and_garbage_is_refused():
    from pydicom.data import get_testdata_file

    data = open(get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False), "rb").read()
    out, media_type = to_browser(data, "scan.dcm")
    assert media_type == "image/png" and _shown(out).shape == (64, 64) and _shown(out).std() > 20
    with pytest.raises(Unprocessable, match="cannot display"):
        to_browser(b"not an image at all", "x.bin")


def test_a_picture_over_the_pixel_cap_is_refused_before_it_is_decoded(monkeypatch):
    """A 15000 x 15000 PNG of one colour is a few hundred kB: decoding it would take gigabytes and many seconds."""
    from raiox.kit.settings import get_settings

    monkeypatch.setenv("RAIOX_MAX_PIXELS", "10000")
    get_settings.cache_clear()
    try:
        with pytest.raises(Unprocessable, match=r"200x100 pixels \(limit 10000\)"):
            to_browser(_save(np.zeros((100, 200), np.uint8), "PNG"), max_side=50)
        with pytest.raises(Unprocessable, match="limit 10000"):  # deep greys go through the vision reader's cap
            to_browser(_save(_ramp(100, 200), "TIFF"), max_side=50)
        assert to_browser(_save(np.zeros((50, 100), np.uint8), "PNG"), max_side=50)[1] == "image/png"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
