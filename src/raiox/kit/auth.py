"""API bearer tokens on requests: the `require_token` dependency and the `BearerFirst` middleware (FastAPI).

The tokens themselves (create, list, revoke, scopes) are `kit.tokens`.
"""

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.deps import DbSession, get_db_session
from raiox.kit.errors import Forbidden, Unauthorized
from raiox.kit.tokens import SCOPES, allows, live_token, scope_refusal, token_actor

bearer_scheme = HTTPBearer(auto_error=False, description="API token from `raiox tokens create NAME`")


MISSING_TOKEN = "missing bearer token (Authorization: Bearer <token>)"
INVALID_TOKEN = "invalid or revoked token"


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None when there is none."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token(scope: str):
    """Dependency: `Authorization: Bearer <token>` of a token with SCOPE; returns the actor name ("token:NAME")."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request, session: AsyncSession = DbSession,
        _documented: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # OpenAPI security scheme
    ) -> str:
        token = bearer_token(request.headers.get("authorization", ""))
        if token is None:
            raise Unauthorized(MISSING_TOKEN)
        actor = await token_actor(session, token, scope)
        if actor is None:
            raise Unauthorized(INVALID_TOKEN)
        return actor

    return dependency


class BearerFirst:
    """ASGI middleware: a POST to one of PATHS (path -> the scope it needs; routes taking large uploads) without a
    valid bearer token of that scope is answered 401 (403 for a token without the scope) before its body is read.
    FastAPI parses a form before the route's dependencies run, so without this a client without (or with a made-up)
    token could make the server spool a large upload only to be refused. The route's `require_token` still checks
    the token (and records its use)."""

    def __init__(self, app, paths: dict[str, str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            token = bearer_token(dict(scope["headers"]).get(b"authorization", b"").decode("latin-1"))
            status, refusal = (401, MISSING_TOKEN) if token is None else await _check(scope, token,
                                                                                      self.paths[scope["path"]])
            if refusal:
                from fastapi.responses import JSONResponse

                error = Unauthorized.code if status == 401 else Forbidden.code
                response = JSONResponse({"error": error, "detail": refusal}, status_code=status,
                                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _check(scope, token: str, needed: str) -> tuple[int, str | None]:
    """(status, refusal) for TOKEN, looked up through the app's own database dependency (and its overrides):
    (401, ...) unknown or revoked, (403, ...) without the NEEDED scope, (200, None) fine."""
    app = scope.get("app")
    provider = getattr(app, "dependency_overrides", {}).get(get_db_session, get_db_session)
    sessions = provider()
    session = await anext(sessions)
    try:
        row = await live_token(session, token)
        if row is None:
            return 401, INVALID_TOKEN
        return (200, None) if allows(row, needed) else (403, scope_refusal(row, needed))
    finally:  # (a rolled-back session expires the row: read it before)
        await sessions.aclose()
