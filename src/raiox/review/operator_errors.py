"""The services' typed errors (English: the API's JSON answers are a contract) in the operator's words, for the
panel's error pages: each message the panel can meet is matched here and said in pt-BR (`error.*` and friends in
the i18n catalog), its values (a status, a number) carried over. A message nothing here matches is never shown: the
page says what its HTTP status means (``panel.ERROR_TEXT``) and the English text goes to the log.
`tests/review/test_panel_errors.py` walks the services the panel calls: each message they raise must be matched
here (or be listed there as one the panel cannot meet)."""

import re

from raiox.kit.errors import DATABASE_DOWN, UNSTORABLE
from raiox.review import i18n

ANY = r"\S+"
# (message, as the service writes it: a full match) -> message id; named groups are the message's values
PATTERNS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(pattern), message_id) for pattern, message_id in (
    (rf"case {ANY} not found", "error.case_not_found"),
    (rf"case {ANY} is not awaiting review \(status: (?P<status>{ANY}) / .*\); only cases awaiting review can be .*",
     "error.not_awaiting"),
    (rf"case {ANY} is (?P<status>{ANY}); it cannot become (?P<to>{ANY})", "error.cannot_become"),
    (rf"case {ANY} is (?P<status>{ANY}); only a failed delivery can be resent", "error.resend_state"),
    (rf"case {ANY} has no report \(status: (?P<status>{ANY})\); only approved cases have report links",
     "error.no_report"),
    (rf"case {ANY} is (?P<status>{ANY}); only a delivered result can be sent again \(a failed delivery is resent\)",
     "error.redeliver_state"),
    (rf"case {ANY} was already marked delivered with another note", "error.marked_delivered_other"),
    (rf"case {ANY} is (?P<status>{ANY}); only a failed delivery can be marked as delivered",
     "error.mark_delivered_state"),
    (rf"case {ANY}'s data were removed \(data retention\)", "case.purged_no_action"),
    (rf"a delivery of case {ANY} is in progress; wait until it ends", "case.delivery_running"),
    (rf"case {ANY} was sent again .*", "error.redeliver_too_soon"),
    (rf"case {ANY} (shows|has) no implant to read again; mark one on a film first", "error.reread_nothing"),
    (rf"case {ANY} awaits review and every film was downloaded(?: and analysed)?: nothing to retry",
     "error.retry_nothing"),
    (rf"only failed cases, or cases awaiting review with films that could not be downloaded"
     rf"(?: or were not analysed)?, can be retried; "
     rf"case {ANY} is (?P<status>{ANY})", "error.retry_state"),
    (r"unknown implant system: (?P<ids>.+)", "error.unknown_system"),
    (rf"(?P<n>{ANY}) other systems; an approval names at most (?P<max>{ANY}) besides the main one",
     "case.too_many_others"),
    (rf"implant {ANY} is given two systems \(.*\)", "error.implant_two_systems"),
    (rf"implants: system {ANY} is neither the approved system nor one of other_system_ids",
     "error.implant_system_not_approved"),
    (rf"implants: {ANY} is not an implant of this case", "case.implant_gone"),
    (rf"the message to the dentist has (?P<n>{ANY}) characters; at most (?P<max>{ANY}), so that the report fits one "
     r"A4 page", "case.report_message_too_long"),
    (r"a rejection needs a message to the dentist", "case.reject_required"),
    (r"the note is empty", "case.note_required"),
    (rf"the note has (?P<n>{ANY}) characters; at most (?P<max>{ANY})", "case.note_too_long"),
    (r"say how the result reached the dentist", "case.delivered_how_required"),
    (rf"the message has (?P<n>{ANY}) characters; at most (?P<max>{ANY})", "case.message_too_long"),
    (r"not an e-mail address: .*", "error.email_invalid"),
    (r"image not found in this case|image not found", "error.image_not_found"),
    (r"implant not found in this case|fixture not found", "error.implant_not_found"),
    (r"reference image not found|system .+ has no reference image .+", "catalog.reference_not_found"),
    (r"image not stored|object not found: .*|invalid storage key: .*", "error.image_not_stored"),
    (rf"image (?P<n>{ANY}) was not analysed \(status: (?P<image>{ANY})\); implants can be marked only on analysed "
     r"films", "error.image_not_analysed"),
    (r"box: outside the .* image", "error.box_outside"),
    (rf"box: under (?P<n>{ANY}) pixels on a side; draw around the whole implant", "case.mark_too_small"),
    (rf"film (?P<n>{ANY}) has (?P<k>{ANY}) marked implants already \(at most (?P<max>{ANY})\)",
     "error.too_many_marks"),
    (r"cannot display this image: .*", "error.image_unreadable"),
    (re.escape(UNSTORABLE), "error.unstorable"),
    (re.escape(DATABASE_DOWN), "error.unavailable"),
))


def _value(name: str, value: str) -> str:
    """A matched value as the operator reads it: a case's status by its label, a film's by its own."""
    if name in ("status", "to"):
        text = i18n.gettext(f"status.{value}")
        return value if text == f"status.{value}" else text
    if name == "image":
        text = i18n.gettext(f"image.{value}")
        return value if text == f"image.{value}" else text
    return value


def operator_text(message: str) -> str | None:
    """MESSAGE, a service's English refusal, in the operator's words; None when the panel does not know it."""
    for pattern, message_id in PATTERNS:
        if match := pattern.fullmatch(message):
            values = {name: _value(name, value) for name, value in match.groupdict().items()}
            return i18n.gettext(message_id, **values)
    return None
