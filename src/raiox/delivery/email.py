"""The result e-mail to the dentist (pt-BR), sent through RAIOX_SMTP_* exactly once.

The Message-ID is fixed (and stored) before sending. Once the message body has been transmitted the
send counts as done even if the server's final reply is lost: a retry never sends a second copy.
"""

import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, localtime, parseaddr

from raiox.kit.settings import Settings


class EmailError(Exception):
    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass
class SendOutcome:
    uncertain: bool = False  # transmitted, but the final server reply was lost


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host and settings.smtp_from)


def new_message_id(settings: Settings) -> str:
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "raiox.local"
    return f"<raiox.{uuid.uuid4().hex}@{domain}>"  # short: never folded


def build(settings: Settings, *, to: Address, subject: str, text: str, html: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    if settings.smtp_reply_to:  # the e-mail asks the dentist to reply: to a mailbox someone reads
        msg["Reply-To"] = settings.smtp_reply_to
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(localtime())  # RFC 5322 requires it; a relay need not add it (spam filters score it)
    msg["Content-Language"] = "pt-BR"
    # RFC 3834: sent by a program, not a person: an out-of-office or vacation responder does not answer it (no reply
    # loop with a mailbox that answers automatically too); Exchange/Outlook read their own header for the same
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _data(smtp: smtplib.SMTP, payload: bytes, outcome: SendOutcome) -> None:
    code, reply = smtp.docmd("DATA")
    if code != 354:
        raise EmailError(f"SMTP DATA refused: {code} {reply!r}", retriable=code >= 400 and code < 500)
    body = re.sub(rb"(?m)^\.", b"..", payload)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    smtp.send(body + b".\r\n")
    outcome.uncertain = True  # from here on, the server may have accepted it
    code, reply = smtp.getreply()
    if code != 250:  # a 4xx here means "not accepted, try later": retrying cannot send it twice
        raise EmailError(f"SMTP message refused: {code} {reply!r}", retriable=400 <= code < 500)
    outcome.uncertain = False


def send(settings: Settings, msg: EmailMessage) -> SendOutcome:
    """Blocking send (run in a thread). Raises EmailError unless the message may have been accepted."""
    outcome = SendOutcome()
    sender = parseaddr(settings.smtp_from)[1]
    recipient = msg["To"].addresses[0].addr_spec  # the address itself, never re-read from the header's text
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                if not smtp.has_extn("starttls"):
                    raise EmailError("SMTP server does not offer STARTTLS (RAIOX_SMTP_STARTTLS=true)", retriable=False)
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_user, password)
            code, reply = smtp.mail(sender)
            if code != 250:
                raise EmailError(f"SMTP sender refused: {code} {reply!r}", retriable=400 <= code < 500)
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise EmailError(f"SMTP recipient refused: {code} {reply!r}", retriable=400 <= code < 500)
            _data(smtp, msg.as_bytes(policy=SMTP), outcome)
    except EmailError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        if outcome.uncertain:
            return outcome
        permanent = isinstance(exc, smtplib.SMTPAuthenticationError)
        raise EmailError(f"SMTP error: {type(exc).__name__}: {exc}", retriable=not permanent) from exc
    return outcome


def address(name: str | None, email: str) -> Address:
    """The To header's address. The name is a display name only: its line breaks and control characters are dropped
    (never a header injection), and `<`, `>`, `,`, `@` in it are quoted or encoded as the e-mail format requires,
    so no reader takes part of a name for another address. An address the format cannot carry (a non-ASCII local
    part) is a permanent EmailError, not a crash that would send the whole delivery job into retries."""
    clean = re.sub(r"[\x00-\x1f\x7f]+", " ", name or "").strip()
    try:
        value = Address(display_name=clean, addr_spec=email)
        value.addr_spec.encode("ascii")
    except (UnicodeError, ValueError, HeaderParseError) as exc:
        raise EmailError(f"cannot address the e-mail to {email!r}: {exc}", retriable=False) from None
    return value
