"""Panel authentication: argon2id passwords, signed session cookies, CSRF tokens, lock-out.

The session cookie (itsdangerous, RAIOX_SESSION_SECRET) holds the user id, the CSRF token and what ends it
server-side: a fingerprint of the password hash and the user's session generation (`users.session_generation`,
bumped by logout). It is HttpOnly, SameSite=Lax, path `/`, and Secure when the request or RAIOX_PUBLIC_URL is
https.
"""

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

from prometheus_client import Counter
from fastapi import Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from raiox.delivery.report import secret
from raiox.kit.audit import audit
from raiox.kit.auth import bearer_scheme, bearer_token
from raiox.kit.deps import DbSession
from raiox.kit.errors import Forbidden, Unauthorized
from raiox.kit.logging import mask_addresses
from raiox.kit.metrics import REGISTRY
from raiox.kit.settings import get_settings
from raiox.kit.tokens import use_token
from raiox.models import User
from raiox.review.accounts import hash_password, hasher, verify_password

COOKIE = "raiox_admin"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# fail2ban matches exactly: "raiox.admin.login_failed ip=<ip> email=<e-mail>" (plain stdlib logger line; the address
# typed is masked, `kit.logging.mask_addresses`)
failure_log = logging.getLogger("raiox.admin")
LOGINS = Counter("raiox_admin_logins_total", "Admin panel login attempts by outcome", ["outcome"], registry=REGISTRY)


@cache
def _dummy_hash() -> str:
    """The argon2 hash of a random password, checked for an unknown address or a locked account so that either costs
    what a real check does (no account enumeration by timing). Made on first use, then kept: at import, every process
    that loads the app or the panel (each `raiox serve`, `raiox admin`, every test run) paid an argon2 hash."""
    return hasher.hash(secrets.token_hex(16))


async def warm_dummy_hash() -> None:
    """Make `_dummy_hash` now, in a worker thread (the event loop goes on meanwhile): the app's start-up awaits it, so
    the first refusal of a process costs what every later one does (never at import: see `_dummy_hash`)."""
    await asyncio.to_thread(_dummy_hash)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret(), salt="raiox.admin.session")


def load_session(request: Request) -> dict:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return {}
    try:
        data = _serializer().loads(raw, max_age=get_settings().admin_session_hours * 3600)
    except BadSignature:
        return {}
    return data if isinstance(data, dict) else {}


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded == "https" or get_settings().public_url.startswith("https://")


def save_session(request: Request, response: Response, data: dict) -> None:
    response.set_cookie(
        COOKIE, _serializer().dumps(data), max_age=get_settings().admin_session_hours * 3600, path="/",
        httponly=True, samesite="lax", secure=is_https(request),
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


def ensure_csrf(session: dict) -> str:
    session.setdefault("csrf", secrets.token_urlsafe(32))
    return session["csrf"]


def csrf_ok(session: dict, supplied: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and supplied and hmac.compare_digest(str(expected), str(supplied)))


def _clean(value: str) -> str:
    return re.sub(r"[^\w@.+\-:]", "_", value)[:200] or "-"


def log_failure(ip: str, email: str) -> None:
    """The failure's log line: the client's address in clear (fail2ban bans by it), what was typed as the e-mail only
    as whether it was one (masked like every address in the logs; a password typed there stays out too)."""
    LOGINS.labels(outcome="failed").inc()
    typed = mask_addresses(_clean(email)) if "@" in email else "-not-an-e-mail-"
    failure_log.warning("raiox.admin.login_failed ip=%s email=%s", _clean(ip), typed)


async def authenticate(session: AsyncSession, email: str, password: str, ip: str) -> User | None:
    """The user, or None (failure logged and audited). Repeated failures lock the source address (IP) out of the
    account after RAIOX_ADMIN_MAX_FAILED_LOGINS (an IPv6 source is its /64), and the account itself only after
    RAIOX_ADMIN_MAX_FAILED_LOGINS_ACCOUNT (a distributed guess), and then not for a source the operator signed in
    from in the last TRUSTED_DAYS: failing logins in an operator's name from elsewhere does not lock the operator
    out. A locked account costs the same argon2 check as an unknown one (no enumeration by timing).

    Failure counts are kept by single statements (``repository.count_source_failure``, ``count_login_failure``):
    parallel wrong passwords cannot lose a count, the limit-th locks in the same statement, and a right password
    checked while a parallel failure locked the source or the account is refused too.

    Every failure is an `auth.login_failed` audit entry (`refused`) and every lock it sets an `auth.lockout` one."""
    from raiox.review import repository

    user = await repository.user_by_email(session, email)
    now, source = datetime.now(UTC), login_source(ip)
    if user is None or not user.active:
        verify_password(_dummy_hash(), password)  # same cost: no user enumeration by timing
        await refused(session, ip, email, user, "unknown" if user is None else "disabled")
        return None
    if await _locked(session, user, source, now):
        verify_password(_dummy_hash(), password)  # a locked account answers as slowly as an unknown one
        await refused(session, ip, email, user, "locked")
        return None
    if not verify_password(user.password_hash, password):
        await refused(session, ip, email, user, "password")
        await _count_failure(session, user, source, now)
        return None
    trusted = await _trusted(session, user, source, now)
    if not await repository.count_login_success(session, user.id, now=now, trusted=trusted) or \
            await repository.source_locked(session, user.id, source, now):
        await refused(session, ip, email, user, "locked")  # a parallel failure locked it meanwhile
        return None
    await repository.trust_source(session, user.id, source, now)
    for name, value in (("failed_logins", 0), ("locked_until", None), ("last_login_at", now)):
        set_committed_value(user, name, value)
    LOGINS.labels(outcome="ok").inc()
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def login_actor(ip: str | None) -> str:
    """Who an anonymous sign-in attempt is in the audit log: its source (the IPv4 address, an IPv6 client's /64)."""
    return f"ip:{login_source(ip)}"


async def refused(session: AsyncSession, ip: str, email: str, user: User | None, reason: str) -> None:
    """A failed sign-in: the fail2ban log line, and the audit entry `auth.login_failed` with its source as the actor,
    the account as the target (none when no account has that address: what was typed is not kept, as the log masks
    it; never the password) and why: unknown | disabled | locked | password."""
    log_failure(ip, email)
    await audit(session, login_actor(ip), "auth.login_failed", target=user.email if user else None, reason=reason)


async def locked_out(session: AsyncSession, ip: str, target: str | None, scope: str, minutes: int) -> None:
    """The audit entry `auth.lockout`: SCOPE (source: this source out of the account TARGET; account: the account
    TARGET from every source it did not sign in from lately; address: every sign-in from this address, the panel's
    address throttle, `login_throttle`, no account) locked for MINUTES."""
    await audit(session, login_actor(ip), "auth.lockout", target=target, scope=scope, minutes=minutes)


TRUSTED_DAYS = 30  # a source the operator signed in from this recently gets past an account-wide lock
def login_source(ip: str | None) -> str:
    """What failures are counted by: the IPv4 address, or the /64 network of an IPv6 one (one subscriber holds a whole
    /64, so counting its addresses one by one would let it lock anything out)."""
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return (ip or "-")[:64]
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is that IPv4 client
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


async def _trusted(session: AsyncSession, user: User, source: str, now: datetime) -> bool:
    from raiox.review import repository

    return await repository.source_trusted(session, user.id, source, now - timedelta(days=TRUSTED_DAYS))


async def _locked(session: AsyncSession, user: User, source: str, now: datetime) -> bool:
    """This source is locked out of the account, or the account is locked and this is not a source the operator
    signed in from lately (a distributed guess must not lock the operator out of their usual network)."""
    from raiox.review import repository

    if await repository.source_locked(session, user.id, source, now):
        return True
    return bool(user.locked_until and user.locked_until > now) and not await _trusted(session, user, source, now)


async def _count_failure(session: AsyncSession, user: User, source: str, now: datetime) -> None:
    from raiox.review import repository

    settings = get_settings()
    minutes = settings.admin_lockout_minutes
    lock_until = now + timedelta(minutes=minutes)
    source_until = await repository.count_source_failure(
        session, user.id, source, now=now, limit=settings.admin_max_failed_logins, lock_until=lock_until)
    if source_until == lock_until:  # this failure locked the source (a lock set before ends earlier)
        await locked_out(session, source, user.email, "source", minutes)
    counted = await repository.count_login_failure(
        session, user.id, now=now, limit=settings.admin_max_failed_logins_account, lock_until=lock_until)
    if counted is not None:  # the session's copy follows the row (not marked changed: nothing to flush)
        set_committed_value(user, "failed_logins", counted[0])
        set_committed_value(user, "locked_until", counted[1])
        if counted[1] == lock_until:
            await locked_out(session, source, user.email, "account", minutes)


def password_fingerprint(user: User) -> str:
    """A keyed digest of the password hash: a new password ends the sessions, and the cookie (signed, not encrypted:
    anyone holding it can read it) shows nothing of the hash."""
    key = (secret() + ":raiox.admin.password").encode()
    return hmac.new(key, user.password_hash.encode(), hashlib.sha256).hexdigest()[:16]


def session_cookie(user: User) -> dict:
    """What a fresh login's cookie holds: the user, a fingerprint of the password hash (a new password ends
    the session), the session generation (logout bumps it, ending every session of the user) and a CSRF token."""
    return {"uid": str(user.id), "pw": password_fingerprint(user), "gen": user.session_generation,
            "csrf": secrets.token_urlsafe(32)}


async def session_user(request: Request, session: AsyncSession) -> User | None:
    data = load_session(request)
    try:
        user_id = uuid.UUID(str(data.get("uid")))
    except ValueError:
        return None
    user = await session.get(User, user_id)
    if user is None or not user.active or not hmac.compare_digest(str(data.get("pw", "")), password_fingerprint(user)):
        return None
    if data.get("gen") != user.session_generation:  # logged out since (or a cookie older than generations)
        return None
    return user


async def require_actor(request: Request, session: AsyncSession = DbSession,
                        _documented: HTTPAuthorizationCredentials | None = Security(bearer_scheme)) -> str:
    """API dependency: `Authorization: Bearer <token>` of a token with the `review` scope ("token:NAME"; its scopes
    in ``request.state.token_scopes``), or a panel session with its CSRF token in the X-CSRF-Token header
    ("user:EMAIL")."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is not None:
        row = await use_token(session, token, "review")
        if row is None:
            raise Unauthorized("invalid or revoked token")
        request.state.token_scopes = list(row.scopes or [])
        return f"token:{row.name}"
    user = await session_user(request, session)
    if user is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>) or panel session")
    if not csrf_ok(load_session(request), request.headers.get(CSRF_HEADER)):
        raise Forbidden("missing or invalid CSRF token (X-CSRF-Token header)")
    return f"user:{user.email}"

