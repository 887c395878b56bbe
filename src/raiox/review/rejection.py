"""The message a failed case's rejection starts from: the panel pre-fills its reject form with it, and the operator
edits it before sending. It goes to the dentist, so it is pt-BR whatever the panel's language: which files could not
be used and why (the panel's own reading of each film's recorded error, `reasons`, without the technical detail),
and what to send instead."""

from raiox.models import CaseImage, ImageStatus
from raiox.review import i18n
from raiox.review.reasons import reason_parts

LANG = "pt_BR"  # the dentist's language, not the operator's
LISTED = 10  # files named one by one; the rest counted (the message stays far below MESSAGE_MAX)
NAME_MAX = 120  # characters of a file name kept


def _name(image: CaseImage) -> str:
    name = " ".join((image.filename or "").split())
    if not name:
        return i18n.gettext("reject_draft.file_number", LANG, n=image.position + 1)
    return name if len(name) <= NAME_MAX else name[:NAME_MAX - 1] + "…"


def _reason(recorded: str) -> str:
    """The recorded (English) error as the panel reads it in pt-BR, its technical detail left out; a generic pt-BR
    reason for one the panel does not know (never English to the dentist)."""
    summary, _detail = reason_parts(recorded, LANG)
    return summary if summary != recorded else i18n.gettext("reject_draft.unknown_reason", LANG)


def failed_case_message(images: list[CaseImage]) -> str:
    """The draft for a `failed` case with IMAGES: each file that could not be downloaded or read and why, then what
    to send (JPEG, PNG or DICOM); a case that came without any file says so."""
    send = i18n.gettext("reject_draft.send", LANG)
    if not images:
        return f"{i18n.gettext('reject_draft.no_files', LANG)}\n\n{send}"
    problems = [i for i in sorted(images, key=lambda i: i.position) if i.error and i.status != ImageStatus.skipped]
    if not problems:
        return f"{i18n.gettext('reject_draft.unreadable', LANG)}\n\n{send}"
    lines = [i18n.gettext("reject_draft.file", LANG, name=_name(i), reason=_reason(i.error))
             for i in problems[:LISTED]]
    if len(problems) > LISTED:
        lines.append(i18n.gettext("reject_draft.more", LANG, n=len(problems) - LISTED))
    return "\n".join([i18n.gettext("reject_draft.files", LANG), *lines, "", send])
