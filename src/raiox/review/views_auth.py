"""Login (e-mail + password), logout (ends all the user's sessions). Failures are throttled per IP and lock the
account after RAIOX_ADMIN_MAX_FAILED_LOGINS; each one is logged as `raiox.admin.login_failed ip=<ip> email=<e-mail>`
(the client's address for fail2ban, the typed address masked) and audited (`auth.login_failed`, and `auth.lockout` when
it locks a source, an account or, through the address throttle, an address; written by `auth.refused` and
`auth.locked_out`). A successful login and a logout are audited without the client's address: it is kept only where
it serves security (the failures' log lines and audit entries, whose actor is the source; the account's sign-in
sources of the last 30 days, `login_locks`, that its lock-out spares; the address throttle's count, `login_throttle`).

The address throttle (IP_MAX_FAILURES failed logins within IP_WINDOW_S from one address, any accounts: every login
from it refused, 429, for IP_WINDOW_S) is kept in the database, so that every panel process counts the same
failures."""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.deps import DbSession
from raiox.review import auth, repository
from raiox.review.deps import csrf_protect
from raiox.review.i18n import gettext
from raiox.review.service import audit
from raiox.review.panel import base_path, redirect, render

router = APIRouter()
IP_WINDOW_S, IP_MAX_FAILURES = 15 * 60, 20


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


async def _count_address_failure(session: AsyncSession, ip: str, source: str, now: datetime) -> None:
    """The failure counted for the address; the one that engages the throttle is audited (once, whichever process
    counts it)."""
    window = timedelta(seconds=IP_WINDOW_S)
    if await repository.count_address_failure(session, source, now=now, window=window, limit=IP_MAX_FAILURES,
                                              lock_until=now + window):
        await auth.locked_out(session, ip, None, "address", IP_WINDOW_S // 60)


def _safe_next(request: Request, target: str | None) -> str:
    base = base_path(request)
    if (target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target
            and target.isprintable()):  # a CR/LF would break the Location header
        return target[len(base):]
    return "/"


def _login_page(request: Request, *, error: str | None = None, email: str = "", status_code: int = 200,
                next_url: str = "", ended: bool = False) -> Response:
    session = auth.load_session(request)
    fresh = "csrf" not in session
    auth.ensure_csrf(session)
    response = render(request, "login.html", {"error": error, "email": email, "next": next_url, "ended": ended,
                                              "csrf_token": session["csrf"]}, status_code=status_code)
    if fresh or error:
        auth.save_session(request, response, {"csrf": session["csrf"]})
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "", expirou: str = "") -> Response:  # noqa: A002 - query name
    """EXPIROU: sent here by a form whose session had ended (panel.login_again): the page says so."""
    return _login_page(request, next_url=next, ended=bool(expirou))


@router.post("/login", dependencies=[Depends(csrf_protect)])
async def login(request: Request, email: str = Form(""), password: str = Form(""), next: str = Form(""),  # noqa: A002
                session: AsyncSession = DbSession) -> Response:
    ip, now = client_ip(request), datetime.now(UTC)
    source = auth.login_source(ip)  # an IPv6 client counts as its /64
    if await repository.address_throttled(session, source, now):  # logged for fail2ban; audited once, when it engaged
        auth.log_failure(ip, email)
        return _login_page(request, error=gettext("login.throttled"), email=email, status_code=429, next_url=next)
    user = await auth.authenticate(session, email, password, ip)
    if user is None:
        await _count_address_failure(session, ip, source, now)
        # one answer whether the account exists, is locked or the password is wrong: nothing to enumerate
        return _login_page(request, error=gettext("login.invalid"), email=email, status_code=401, next_url=next)
    await audit(session, f"user:{user.email}", "auth.login")
    response = redirect(request, _safe_next(request, next))
    auth.save_session(request, response, auth.session_cookie(user))
    return response


@router.post("/logout", dependencies=[Depends(csrf_protect)])
async def logout(request: Request, session: AsyncSession = DbSession) -> Response:
    """Ends the session server-side too: the user's session generation moves on, so this cookie (and the
    user's sessions on other devices) stop working even if replayed."""
    user = await auth.session_user(request, session)
    if user is not None:
        await repository.end_sessions(session, user.id)
        await audit(session, f"user:{user.email}", "auth.logout")
    response = redirect(request, "/login")
    auth.clear_session(response)
    return response
