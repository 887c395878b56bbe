"""A failed case's rejection draft speaks to the dentist: each recorded film error in the dentist's own pt-BR words,
never the operator's reading of it (upload hosts, servers, storage, settings, retries)."""

import json
import re

import pytest

from raiox.models import CaseImage, ImageStatus
from raiox.review import i18n
from raiox.review.reasons import PATTERNS, reason_match, reason_parts
from raiox.review.rejection import DENTIST, failed_case_message

PT = json.loads((i18n.FOLDER / "pt_BR.json").read_text(encoding="utf-8"))
EN = json.loads((i18n.FOLDER / "en.json").read_text(encoding="utf-8"))
# what the operator may read, never the dentist
JARGON = re.compile(r"(?i)servidor|jotform|host|armazenamento|storage|http|url|upload|raiox_|tentativa|retry|detalhe")

RECORDED = {  # every film error the intake, the downloader, the decoder and the analysis record -> the dentist's kind
    "not an http(s) URL: 'ftp://example.com/a.png'": "download",
    "https://files.example.com is not an allowed upload origin (RAIOX_JOTFORM_UPLOAD_HOSTS)": "download",
    "files.example.com resolves to a non-public address (10.0.0.7); refused": "download",
    "redirect without Location from www.jotform.com/uploads/x/a.png": "download",
    "too many redirects from www.jotform.com/uploads/x/a.png": "download",
    "upload host answered HTTP 403 for www.jotform.com/uploads/x/a.png": "download",
    "upload host answered HTTP 503 for www.jotform.com/uploads/x/a.png": "download",
    "upload host answered with an HTML page, not the file (login page? check RAIOX_JOTFORM_API_KEY and 'Require "
    "log-in to view uploaded files')": "download",
    "cannot resolve www.jotform.com: Name or service not known": "download",
    "timed out downloading www.jotform.com/uploads/x/a.png": "download",
    "network error downloading www.jotform.com/uploads/x/a.png: ConnectError": "download",
    "no image could be downloaded (a.png: upload host answered HTTP 404 for a.png)": "download",
    "not an image: HTML page (a login or form page was downloaded instead of the file)": "download",
    "file too large: more than 52428800 bytes (RAIOX_DOWNLOAD_MAX_BYTES)": "too_large",
    "file too large: 60000000 bytes > 52428800 (RAIOX_DOWNLOAD_MAX_BYTES)": "too_large",
    "image too large: over 178956970 pixels (limit 100000000)": "too_large",
    "image too large: 20000x12000 pixels (limit 100000000)": "too_large",
    "image too small: 40x30 pixels": "too_small",
    "not an image: empty file": "corrupt",
    "corrupt or truncated image: image file is truncated (12 bytes not processed)": "corrupt",
    "corrupt DICOM file: File is missing DICOM File Meta Information header": "corrupt",
    "DICOM file has no image (no PixelData)": "corrupt",
    "cannot decode DICOM pixel data (1.2.840.10008.1.2.4.90): no JPEG 2000 decoder": "corrupt",
    "not an image: PDF document": "unsupported_format",
    "not an image: HEIC photo (support not installed: send JPEG or PNG)": "unsupported_format",
    "not an image: ZIP archive (or Office document)": "unsupported_format",
    "not an image: SVG/XML document": "unsupported_format",
    "not an image: JSON text": "unsupported_format",
    "unsupported colour mode LAB: send a grayscale or RGB image": "unsupported_format",
    "not an image: unrecognised file format": "not_image",
    "cannot decode the file: MemoryError": "not_image",
    "image is blank (a single grey level)": "blank",
    "image is blank (every pixel is 0)": "blank",
    "analysis failed: RuntimeError: ONNX session failed on storage node": "not_analysed",
    "processing failed after 6 attempts: storage down": "not_analysed",  # a case's pending films get its reason
}


def _draft(error: str, name: str = "radiografia 1.png") -> str:
    return failed_case_message([CaseImage(position=0, filename=name, status=ImageStatus.failed, error=error)])


@pytest.mark.parametrize("recorded", sorted(RECORDED))
def test_each_recorded_film_error_reaches_the_dentist_in_plain_pt_br(recorded):
    """No operator jargon in the draft (the panel's own reading of many of these names Jotform's servers, hosts or
    settings), and the reason is the dentist's pt-BR sentence for its kind, not the English record."""
    assert reason_match(recorded) is not None, "a reason the panel knows"
    draft = _draft(recorded)
    reason = PT[f"reject_draft.reason.{RECORDED[recorded]}"]
    assert draft == (f"Não conseguimos usar as radiografias enviadas:\n- radiografia 1.png: {reason}\n\n"
                     "Envie as radiografias como arquivos JPEG, PNG ou DICOM.")
    assert not JARGON.search(draft), draft
    assert reason != EN[f"reject_draft.reason.{RECORDED[recorded]}"]  # pt-BR, not the English catalog's


def test_the_operators_reading_stays_in_the_panel():
    """The operator keeps the precise reading (where it failed), the dentist gets what to do about it."""
    for recorded in ("upload host answered HTTP 403 for www.jotform.com/uploads/x/a.png",
                     "https://files.example.com is not an allowed upload origin (RAIOX_JOTFORM_UPLOAD_HOSTS)"):
        assert JARGON.search(reason_parts(recorded, "pt_BR")[0])
        assert "o link do arquivo expirou ou não pôde ser baixado" in _draft(recorded)


def test_an_unknown_error_gets_a_generic_dentist_sentence():
    draft = _draft("something nobody foresaw on host 10.0.0.1")
    assert "- radiografia 1.png: não foi possível usar o arquivo\n" in draft and not JARGON.search(draft)


def test_every_dentist_kind_has_its_message_and_maps_a_known_reason():
    message_ids = {message_id for _, message_id in PATTERNS}
    assert set(DENTIST) <= message_ids
    kinds = set(DENTIST.values()) | set(RECORDED.values())
    for kind in kinds:
        assert PT[f"reject_draft.reason.{kind}"] and EN[f"reject_draft.reason.{kind}"]
        assert not JARGON.search(PT[f"reject_draft.reason.{kind}"])


def test_files_past_the_listed_ones_are_counted_in_words():
    def films(count: int) -> list[CaseImage]:
        return [CaseImage(position=n, filename=f"rx{n}.png", status=ImageStatus.invalid,
                          error="not an image: PDF document") for n in range(count)]

    assert "\n- e mais 1 arquivo com problema\n" in failed_case_message(films(11))
    assert "\n- e mais 3 arquivos com problema\n" in failed_case_message(films(13))
