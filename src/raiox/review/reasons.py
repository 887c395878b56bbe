"""The operator's reading of the reasons the system records in English (case history, failure reasons, image and
upload errors): the known ones become the panel's language (message ids ``reason.*`` in ``locale/``), with any
technical detail (English, as recorded) kept apart from that summary (``reason_parts``: the panel folds it away
under "Detalhes técnicos") or after it (``reason_text``); anything else is shown as it was recorded.

The records stay in English on purpose: they are what logs, the JSON API and engineers read."""

import re

from raiox.review import i18n

# (pattern of the recorded text, message id); named groups fill the message, ``detail`` is the technical rest
PATTERNS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), m) for p, m in (
    (r"^(?P<n>\d+) file\(s\) submitted$", "reason.files_submitted"),
    (r"^processing started$", "reason.processing_started"),
    (r"^processing attempt (?P<n>\d+)$", "reason.processing_attempt"),
    (r"^retry requested$", "reason.retry_requested"),
    (r"^sent again to the dentist$", "reason.sent_again"),
    (r"^(?P<images>\d+) image\(s\) analysed, (?P<fixtures>\d+) implant\(s\) found$", "reason.analysed"),
    (r"^download of failed films requested$", "reason.refetch_requested"),  # before session 50
    (r"^films not downloaded or not analysed requested again$", "reason.refetch_requested"),
    (r"^(?P<n>\d+) film\(s\) downloaded again, (?P<fixtures>\d+) implant\(s\) found$", "reason.refetched"),
    (r"^(?P<n>\d+) film\(s\) downloaded again after the case was decided, (?P<skipped>\d+) not analysed$",
     "reason.refetched_after_decision"),
    (r"^(?P<n>\d+) film\(s\) downloaded again and analysed, (?P<duplicates>\d+) duplicate\(s\) skipped, "
     r"(?P<fixtures>\d+) implant\(s\) found$", "reason.refetched_with_duplicates"),
    (r"^(?P<n>\d+) film\(s\) downloaded again after the case was decided, (?P<skipped>\d+) not analysed, "
     r"(?P<duplicates>\d+) duplicate\(s\) skipped$", "reason.refetched_after_decision_with_duplicates"),
    # a retry whose films (some or all) could not be downloaded again
    (r"^(?P<n>\d+) film\(s\) could not be downloaded again$", "reason.refetch_failed"),
    (r"^(?P<n>\d+) film\(s\) downloaded again, (?P<fixtures>\d+) implant\(s\) found, "
     r"(?P<missing>\d+) film\(s\) could not be downloaded again$", "reason.refetched_partly"),
    (r"^(?P<n>\d+) film\(s\) downloaded again and analysed, (?P<duplicates>\d+) duplicate\(s\) skipped, "
     r"(?P<fixtures>\d+) implant\(s\) found, (?P<missing>\d+) film\(s\) could not be downloaded again$",
     "reason.refetched_with_duplicates_partly"),
    (r"^not analysed: the case was decided \((?P<detail>\w+)\) before this film was analysed$",
     "reason.decided_before_analysis"),
    (r"^no file submitted$", "reason.no_file"),
    (r"^no image could be downloaded \((?P<detail>.*)\)$", "reason.no_download"),
    (r"^no usable image \((?P<detail>.*)\)$", "reason.no_usable_image"),
    (r"^processing failed after (?P<n>\d+) attempts: (?P<detail>.*)$", "reason.processing_failed"),
    (r"^(?P<detail>not an http\(s\) URL: .*)$", "reason.not_http"),
    (r"^no delivery channel: (?P<detail>.*)$", "reason.no_delivery_channel"),
    (r"^not an image: (?P<detail>.*)$", "reason.not_an_image"),
    (r"^not a usable image: (?P<detail>.*)$", "reason.not_an_image"),
    (r"^(?P<detail>unsupported colour mode .*)$", "reason.not_an_image"),
    (r"^cannot decode the file: (?P<detail>.*)$", "reason.cannot_decode"),
    (r"^analysis failed: (?P<detail>.*)$", "reason.analysis_failed"),
    (r"^image too small: (?P<detail>.*)$", "reason.image_too_small"),
    (r"^image too large: (?P<detail>.*)$", "reason.image_too_large"),
    (r"^corrupt or truncated image: (?P<detail>.*)$", "reason.corrupt_image"),
    (r"^image is blank .*$", "reason.blank_image"),
    (r"^(?P<detail>corrupt DICOM file: .*|DICOM file has no image .*|cannot decode DICOM pixel data .*)$",
     "reason.dicom"),
    (r"^(?P<detail>.* is not an allowed upload origin .*)$", "reason.upload_origin"),
    (r"^(?P<detail>file too large: .*)$", "reason.file_too_large"),
    (r"^(?P<detail>upload host answered .*|cannot resolve .*|.* resolves to a non-public address .*"
     r"|timed out downloading .*|network error downloading .*|redirect without Location from .*"
     r"|too many redirects from .*)$", "reason.upload_host"),
    (r"^duplicate of (?P<first>.*)$", "reason.duplicate_upload"),
    (r"^same image already in system (?P<system>.*)$", "reason.already_in_system"),
    (r"^unreadable: (?P<detail>.*)$", "reason.cannot_decode"),
    # Jotform failed while the e-mail's outcome is unknown (an earlier attempt handed it to the server): each channel
    (r"^(?P<detail>jotform: Jotform API (401|403|404)\b(?:(?!; email: ).)*; email: an earlier attempt may have sent "
     r"the e-mail .*)$", "reason.jotform_refused_email_uncertain"),
    (r"^(?P<detail>jotform: (?:(?!; email: ).)*; email: an earlier attempt may have sent the e-mail .*)$",
     "reason.jotform_failed_email_uncertain"),
    (r"^(?P<detail>jotform: Jotform API (401|403|404)\b(?:(?!; email: ).)*)$", "reason.jotform_refused_edit"),
    (r"^email: an earlier attempt may have sent the e-mail .*$", "reason.email_uncertain"),
    # which channel failed (the other one, if configured, got the result: a resend tries only what is missing)
    (r"^(?P<detail>jotform: .*; email: (?!an earlier attempt).*)$", "reason.delivery_both_failed"),
    (r"^(?P<detail>jotform: (?:(?!; email: ).)*)$", "reason.jotform_failed"),
    (r"^(?P<detail>email: .*)$", "reason.email_failed"),
    (r"^(?P<detail>(jotform|email): .*)$", "reason.delivery_failed"),
    (r"^unexpected error: (?P<detail>.*)$", "reason.delivery_failed"),
))
# the groups that are counts: singular or plural, 1.234
COUNTS = ("n", "images", "fixtures", "skipped", "duplicates", "missing")
# who recorded an entry (``actor``: "kind:name") -> message id; people and tokens keep their name
ACTORS = {"system:worker": "actor.worker", "system:delivery": "actor.delivery", "system:review": "actor.review",
          "jotform:webhook": "actor.webhook", "jotform:reconcile": "actor.reconcile", "jotform:api": "actor.webhook",
          "system:retention": "actor.retention", "ip:anonymised": "actor.ip_anonymised"}


def reason_match(recorded: str | None) -> tuple[str, dict[str, str]] | None:
    """The message id of ``recorded`` (a known reason) and the fields read from it; None for any other text."""
    for pattern, message_id in PATTERNS if recorded else ():
        if match := pattern.match(recorded):
            return message_id, match.groupdict()
    return None


def reason_parts(recorded: str | None, lang: str | None = None) -> tuple[str, str | None]:
    """``recorded`` as (the summary in the panel's language, the technical detail recorded with it, or None) where
    it is a known reason; (as recorded, None) otherwise."""
    if not recorded:
        return "", None
    if (known := reason_match(recorded)) is None:
        return recorded, None
    message_id, fields = known
    counts = {k: int(v) for k, v in fields.items() if k in COUNTS}  # "1 arquivo enviado", "3 arquivos..."
    return i18n.gettext(message_id, lang, **fields | counts), fields.get("detail") or None


def reason_text(recorded: str | None, lang: str | None = None) -> str:
    """``recorded`` in the panel's language where it is a known reason, its technical detail after the summary
    in one line; as recorded otherwise."""
    summary, detail = reason_parts(recorded, lang)
    return i18n.gettext("reason.with_detail", lang, summary=summary, detail=detail) if detail else summary


def actor_text(actor: str | None, lang: str | None = None) -> str:
    """Who did it, as the operator reads it: the system's parts by their role, a person by e-mail, an API token
    by its name, an anonymous sign-in attempt by its address."""
    if not actor:
        return ""
    if actor in ACTORS:
        return i18n.gettext(ACTORS[actor], lang)
    kind, _, name = actor.partition(":")
    if kind in ("token", "cli", "ip") and name:  # an API token by its name, a command by what was run, an address
        return i18n.gettext(f"actor.{kind}", lang, name=name)
    return name or kind
