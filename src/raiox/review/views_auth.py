"""Login (e-mail + password), logout (ends all the user's sessions). Failures are throttled per IP and lock the
account after RAIOX_ADMIN_MAX_FAILED_LOGINS; each one is logged as `raiox.admin.login_failed ip=<ip> email=<e-mail>`
(the client's address for fail2ban, the typed address masked) and audited (`auth.login_failed`, and `auth.lockout` when
it locks a source, an account or, through the in-memory throttle, an address; written by `auth.refused` and
`auth.locked_out`). A successful login and a logout are audited without the client's address: it is kept only where
it serves security (the failures' log lines and audit entries, whose actor is the source; the account's sign-in
sources of the last 30 days, `login_locks`, that its lock-out spares)."""

import time
from collections import defaultdict, deque

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import DbSession
from raiox.review import auth, repository
from raiox.review.deps import csrf_protect
from raiox.review.i18n import gettext
from raiox.review.service import audit
from raiox.review.panel import base_path, redirect, render

router = APIRouter()
IP_WINDOW_S, IP_MAX_FAILURES = 15 * 60, 20
_ip_failures: dict[str, deque] = defaultdict(deque)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


def _ip_blocked(ip: str) -> bool:
    window = _ip_failures[ip]
    while window and window[0] < time.monotonic() - IP_WINDOW_S:
        window.popleft()
    if not window:
        del _ip_failures[ip]
        return False
    return len(window) >= IP_MAX_FAILURES


def _prune() -> None:
    """Forget addresses whose failures are all older than the window (the table must not grow forever)."""
    if len(_ip_failures) > 1000:
        oldest = time.monotonic() - IP_WINDOW_S
        for ip in [ip for ip, window in _ip_failures.items() if not window or window[-1] < oldest]:
            del _ip_failures[ip]


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
    ip = client_ip(request)
    source = auth.login_source(ip)  # an IPv6 client counts as its /64
    if _ip_blocked(source):  # logged for fail2ban; audited once, when the throttle engaged (below)
        auth.log_failure(ip, email)
        return _login_page(request, error=gettext("login.throttled"), email=email, status_code=429, next_url=next)
    user = await auth.authenticate(session, email, password, ip)
    if user is None:
        _ip_failures[source].append(time.monotonic())
        if len(_ip_failures[source]) == IP_MAX_FAILURES:  # from now on this address is refused for a while
            await auth.locked_out(session, ip, None, "address", IP_WINDOW_S // 60)
        _prune()
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
