"""Films as they reach the service with personal metadata in them: a phone photo whose EXIF names its author, the
camera's serial number and where it was taken, and a DICOM export with the patient's name, id and birth date."""

import io

import numpy as np
from PIL import Image

PATIENT = "Silva^Joao"  # in the DICOM's PatientName; its parts must not survive anywhere stored
AUTHOR = "Joao da Silva"  # EXIF Artist
SERIAL = "SN-0042-XRAY"  # EXIF BodySerialNumber
PERSONAL = (b"Silva", b"Joao", SERIAL.encode(), b"Clinica Sorriso", b"19800101", b"PAC-12345")


def jpeg_with_exif(grey: np.ndarray, *, orientation: int = 1) -> bytes:
    """GREY (uint8) as an RGB JPEG carrying Artist, BodySerialNumber, a GPS position and ORIENTATION in its EXIF."""
    exif = Image.Exif()
    exif[0x013B] = AUTHOR  # Artist
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA431] = SERIAL  # Exif IFD: BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (23.0, 33.0, 1.0), "W", (46.0, 38.0, 2.0)
    out = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def dicom_with_patient(grey: np.ndarray) -> bytes:
    """GREY as a 12-bit intra-oral DICOM (MONOCHROME2, rescaled) naming the patient, the clinic and the sensor."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.3"  # digital intra-oral X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT, "PAC-12345", "19800101"
    ds.InstitutionName, ds.DeviceSerialNumber, ds.StudyDate = "Clinica Sorriso", SERIAL, "20260315"
    ds.Modality = "IO"
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = (grey.astype(np.uint16) * 16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def carries_personal_data(data: bytes) -> bool:
    """Whether DATA holds any of the personal values above, as text, or any EXIF / DICOM patient attribute."""
    if any(value in data for value in PERSONAL):
        return True
    if data[128:132] == b"DICM":
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data))
        return any(keyword in ds for keyword in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
                                                 "DeviceSerialNumber", "StudyInstanceUID", "StudyDate"))
    with Image.open(io.BytesIO(data)) as im:
        tags = set(im.getexif())
        if im.format == "TIFF":  # a TIFF's own layout tags are its EXIF too: only those may be there
            tags -= TIFF_LAYOUT
        return bool(tags) or bool({"exif", "xmp", "icc_profile", "XML:com.adobe.xmp", "comment"} & set(im.info)) \
            or (im.format == "PNG" and any(isinstance(value, str) for value in im.info.values()))  # text chunks


# width, length, bits per sample, compression, photometric, strip offsets, samples per pixel, rows per strip, strip
# byte counts, resolution and its unit, planar configuration, predictor, sample format
TIFF_LAYOUT = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 339}
