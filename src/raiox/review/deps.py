"""Panel dependencies: the logged-in user, the admin role, CSRF on every state-changing request."""

from types import SimpleNamespace

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.deps import DbSession
from raiox.kit.errors import Forbidden
from raiox.models import User
from raiox.review.auth import CSRF_FIELD, CSRF_HEADER, csrf_ok, load_session, session_user
from raiox.review.i18n import gettext
from raiox.review.panel import LoginRequired, for_operator


async def current_user(request: Request, session: AsyncSession = DbSession) -> User:
    user = await session_user(request, session)
    if user is None:
        raise LoginRequired()
    # a plain copy for templates: error pages render after the session rolled back
    request.state.user = SimpleNamespace(id=user.id, email=user.email, role=user.role)
    return user


async def admin_user(user: User = Depends(current_user)) -> User:
    if user.role != "admin":
        raise for_operator(Forbidden(gettext("error.admin_only")))
    return user


async def csrf_protect(request: Request) -> None:
    """The session's CSRF token must come back in the X-CSRF-Token header (HTMX) or the form field."""
    supplied = request.headers.get(CSRF_HEADER)
    if not supplied and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        supplied = (await request.form()).get(CSRF_FIELD)
    if not csrf_ok(load_session(request), supplied):
        raise for_operator(Forbidden(gettext("error.csrf")))


def actor(user: User) -> str:
    return f"user:{user.email}"
