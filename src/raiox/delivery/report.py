"""Signed, expiring links to the one-page case report (itsdangerous, RAIOX_SESSION_SECRET)."""

import secrets
import uuid
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from raiox.kit.errors import NotFound, RaioxError
from raiox.kit.logging import get_logger
from raiox.kit.settings import get_settings

log = get_logger(__name__)
SALT = "raiox.report"


@lru_cache
def _ephemeral_secret() -> str:
    log.warning("session_secret_missing", detail="RAIOX_SESSION_SECRET unset: using a per-process secret")
    return secrets.token_urlsafe(32)


def secret() -> str:
    """RAIOX_SESSION_SECRET (required in production); a per-process random one in development."""
    configured = get_settings().session_secret
    return configured.get_secret_value() if configured else _ephemeral_secret()


class InvalidLink(NotFound):
    """A report link whose signature does not check out (tampered, cut short, another secret)."""


class LinkExpired(RaioxError):
    """A report link past RAIOX_REPORT_LINK_DAYS: it was valid once (410, not 404)."""

    status_code = 410
    code = "link_expired"

    def __init__(self, message: str, case_id: uuid.UUID | None = None) -> None:
        super().__init__(message)
        self.case_id = case_id  # the signature is genuine: whose report it was (the page names its protocol)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret(), salt=SALT)


class LinkRevoked(RaioxError):
    """A genuine report link whose case's links were revoked since (a new key: `cases.report_key`)."""

    status_code = 410
    code = "link_revoked"

    def __init__(self, message: str, case_id: uuid.UUID) -> None:
        super().__init__(message)
        self.case_id = case_id


def new_key() -> str:
    """A case's new report-link key (revokes every link made before)."""
    return secrets.token_urlsafe(12)


def report_token(case_id: uuid.UUID, key: str | None = None) -> str:
    """The signed token of CASE_ID's report link; KEY: the case's `report_key` (None before any revocation)."""
    return _serializer().dumps(str(case_id) if key is None else f"{case_id}.{key}")


def report_url(case_id: uuid.UUID, key: str | None = None) -> str:
    return f"{get_settings().public_url.rstrip('/')}/reports/{report_token(case_id, key)}"


def _parts(payload: str) -> tuple[uuid.UUID, str | None]:
    case_id, _, key = str(payload).partition(".")
    return uuid.UUID(case_id), key or None


def case_from_token(token: str) -> tuple[uuid.UUID, str | None]:
    """(case id, the key the link carries) of a genuine, unexpired link."""
    max_age = get_settings().report_link_days * 86400
    try:
        return _parts(_serializer().loads(token, max_age=max_age))
    except SignatureExpired:
        raise LinkExpired("this report link has expired", _expired_case(token)) from None
    except (BadSignature, ValueError):
        raise InvalidLink("invalid report link") from None


def _expired_case(token: str) -> uuid.UUID | None:
    try:  # signature checked again, age not: only to name the case on the "expired" page
        return _parts(_serializer().loads(token))[0]
    except (BadSignature, ValueError):
        return None
