"""Render and decode speed of raiox.synth / raiox.vision.io (one process, one thread).

    PYTHONPATH=src python bench/synth.py [--n 40]

Prints a markdown table of median wall and CPU milliseconds per call. CPU time is reported
next to wall time because the development machine is shared while measuring.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from raiox.synth import demo_catalog, render_fixture_crop, render_reference, render_scene, to_png  # noqa: E402
from raiox.synth.anatomy import texture_bank  # noqa: E402
from raiox.vision import read_image  # noqa: E402


def measure(fn, n):
    wall, cpu = [], []
    for i in range(n):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(i)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return np.median(wall) * 1000, np.median(cpu) * 1000


def dicom_bytes(img: np.ndarray, syntax: str = "uncompressed") -> bytes:
    """A 12-bit MONOCHROME2 DICOM of ``img`` (as a sensor exports it), uncompressed or J2K lossless."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import JPEG2000Lossless, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = (np.clip(img, 0, 1) * 4095).round().astype(np.uint16).tobytes()
    if syntax == "j2k":
        ds.compress(JPEG2000Lossless)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    n = ap.parse_args().n
    cat = demo_catalog()
    specs = [s.spec for s in cat]
    texture_bank()  # one-off per process (~0.5 s), excluded
    scene = render_scene(specs[:2], 0, {"size": (1200, 1600)})
    png = to_png(scene.image)
    ok, jpg = cv2.imencode(".jpg", (scene.image * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    dcm, j2k = dicom_bytes(scene.image), dicom_bytes(scene.image, "j2k")
    rows = [
        ("render_fixture_crop 256x128", lambda i: render_fixture_crop(specs[i % len(specs)], i)),
        ("render_fixture_crop 160x80", lambda i: render_fixture_crop(specs[i % len(specs)], i, size=(160, 80))),
        ("render_reference 640x384", lambda i: render_reference(specs[i % len(specs)], i)),
        ("render_scene 1200x1600, 1 implant",
         lambda i: render_scene([specs[i % len(specs)]], i, {"size": (1200, 1600)})),
        ("render_scene 1200x1600, 3 implants",
         lambda i: render_scene([specs[(i + k * 41) % len(specs)] for k in range(3)], i, {"size": (1200, 1600)})),
        ("read_image PNG 1200x1600", lambda i: read_image(png)),
        ("read_image JPEG 1200x1600", lambda i: read_image(jpg.tobytes())),
        ("read_image DICOM 12-bit 1200x1600", lambda i: read_image(dcm)),
        ("read_image DICOM JPEG 2000 lossless 1200x1600", lambda i: read_image(j2k)),
    ]
    print(f"| operation | wall ms (median of {n}) | CPU ms |")
    print("|---|---|---|")
    for name, fn in rows:
        wall, cpu = measure(fn, n if "scene" not in name else max(8, n // 4))
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
