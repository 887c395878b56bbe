"""The message a failed case's rejection starts from: the panel pre-fills its reject form with it, and the operator
edits it before sending. It goes to the dentist, so it is pt-BR whatever the panel's language: which files could not
be used and why, and what to send instead. The why is the dentist's own wording (`reject_draft.reason.<kind>`) of
the category the panel reads in each film's recorded error (`reasons`): the panel's words are the operator's (upload
hosts, servers, settings, retries), which the dentist can do nothing about."""

import re

from raiox.models import CaseImage, ImageStatus
from raiox.review import i18n
from raiox.review.reasons import reason_match

LANG = "pt_BR"  # the dentist's language, not the operator's
LISTED = 10  # files named one by one; the rest counted (the message stays far below MESSAGE_MAX)
NAME_MAX = 120  # characters of a file name kept

# the panel's reading of a film's error (its `reason.*` id) -> what the dentist reads, `reject_draft.reason.<kind>`
DENTIST = {
    "reason.not_an_image": "not_image", "reason.cannot_decode": "not_image", "reason.no_usable_image": "not_image",
    "reason.corrupt_image": "corrupt", "reason.dicom": "corrupt",
    "reason.image_too_small": "too_small", "reason.image_too_large": "too_large", "reason.file_too_large": "too_large",
    "reason.blank_image": "blank", "reason.analysis_failed": "not_analysed", "reason.processing_failed": "not_analysed",
    "reason.upload_host": "download", "reason.upload_origin": "download", "reason.not_http": "download",
    "reason.no_download": "download",
}
# finer than the panel's category, read in the recorded text first: a login page downloaded in place of the file is
# the link's fault, an empty file an incomplete one, a document or a photo format we do not read a format to change
REFINED: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), kind) for p, kind in (
    (r"^not an image: HTML page", "download"),
    (r"^not an image: empty file$", "corrupt"),
    (r"^not an image: (?!unrecognised file format$)", "unsupported_format"),
    (r"^unsupported colour mode ", "unsupported_format"),
))


def _name(image: CaseImage) -> str:
    name = " ".join((image.filename or "").split())
    if not name:
        return i18n.gettext("reject_draft.file_number", LANG, n=image.position + 1)
    return name if len(name) <= NAME_MAX else name[:NAME_MAX - 1] + "…"


def dentist_reason(recorded: str) -> str:
    """The recorded (English) error of a film in the dentist's words, pt-BR: what went wrong with the file as the
    dentist can act on it, never the operator's reading (hosts, servers, settings); a generic sentence for one the
    panel does not know."""
    kind = next((kind for pattern, kind in REFINED if pattern.match(recorded)), None)
    if kind is None and (known := reason_match(recorded)) is not None:
        kind = DENTIST.get(known[0])
    return i18n.gettext(f"reject_draft.reason.{kind}" if kind else "reject_draft.unknown_reason", LANG)


def failed_case_message(images: list[CaseImage]) -> str:
    """The draft for a `failed` case with IMAGES: each file that could not be downloaded or read and why, then what
    to send (JPEG, PNG or DICOM); a case that came without any file says so."""
    send = i18n.gettext("reject_draft.send", LANG)
    if not images:
        return f"{i18n.gettext('reject_draft.no_files', LANG)}\n\n{send}"
    problems = [i for i in sorted(images, key=lambda i: i.position) if i.error and i.status != ImageStatus.skipped]
    if not problems:
        return f"{i18n.gettext('reject_draft.unreadable', LANG)}\n\n{send}"
    lines = [i18n.gettext("reject_draft.file", LANG, name=_name(i), reason=dentist_reason(i.error))
             for i in problems[:LISTED]]
    if len(problems) > LISTED:
        lines.append(i18n.gettext("reject_draft.more", LANG, n=len(problems) - LISTED))
    return "\n".join([i18n.gettext("reject_draft.files", LANG), *lines, "", send])
