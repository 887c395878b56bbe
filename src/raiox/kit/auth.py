"""API bearer tokens: random 256-bit tokens, stored as sha256 (never in clear)."""

import hashlib
import secrets
from datetime import UTC, datetime

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import get_db_session
from raiox.kit.errors import BadRequest, Unauthorized
from raiox.models import ApiToken

PREFIX = "rx_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_name(name: str) -> str:
    """The name stripped of surrounding blanks; BadRequest when it is empty, too long for its column or holds a
    control character."""
    name, longest = name.strip(), ApiToken.__table__.c.name.type.length
    if not name:
        raise BadRequest("a token name cannot be blank")
    if len(name) > longest:
        raise BadRequest(f"a token name has at most {longest} characters (this one has {len(name)})")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BadRequest("a token name cannot hold control characters")
    return name


async def create_token(session: AsyncSession, name: str) -> str:
    name = token_name(name)
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), prefix=token[:10]))
    await session.flush()
    return token


async def live_token(session: AsyncSession, token: str) -> ApiToken | None:
    """The unrevoked token whose hash TOKEN has."""
    query = select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def token_actor(session: AsyncSession, token: str) -> str | None:
    row = await live_token(session, token)
    if row is None:
        return None
    await session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=datetime.now(UTC)))
    return f"token:{row.name}"


bearer_scheme = HTTPBearer(auto_error=False, description="API token from `raiox tokens create NAME`")


MISSING_TOKEN = "missing bearer token (Authorization: Bearer <token>)"
INVALID_TOKEN = "invalid or revoked token"


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None when there is none."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_token(
    request: Request, session: AsyncSession = Depends(get_db_session),
    _documented: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # OpenAPI security scheme
) -> str:
    """Dependency: `Authorization: Bearer <token>`; returns the actor name ("token:NAME")."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthorized(MISSING_TOKEN)
    actor = await token_actor(session, token)
    if actor is None:
        raise Unauthorized(INVALID_TOKEN)
    return actor


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.execute(select(ApiToken).order_by(ApiToken.created_at))).scalars())


async def revoke_token(session: AsyncSession, name_or_prefix: str) -> int:
    """Revoke the live tokens with this name or prefix; returns how many were revoked."""
    from sqlalchemy import or_

    result = await session.execute(
        update(ApiToken)
        .where(or_(ApiToken.name == name_or_prefix, ApiToken.prefix == name_or_prefix), ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return result.rowcount or 0


class BearerFirst:
    """ASGI middleware: a POST to one of PATHS (routes taking large uploads) without a valid bearer token is answered
    401 before its body is read. FastAPI parses a form before the route's dependencies run, so without this a client
    without (or with a made-up) token could make the server spool a large upload only to be refused. The route's
    `require_token` still checks the token (and records its use)."""

    def __init__(self, app, paths: frozenset[str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            token = bearer_token(dict(scope["headers"]).get(b"authorization", b"").decode("latin-1"))
            refusal = MISSING_TOKEN if token is None else None if await _valid(scope, token) else INVALID_TOKEN
            if refusal:
                from fastapi.responses import JSONResponse

                response = JSONResponse({"error": Unauthorized.code, "detail": refusal}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _valid(scope, token: str) -> bool:
    """Whether TOKEN is live, looked up through the app's own database dependency (and its overrides)."""
    app = scope.get("app")
    provider = getattr(app, "dependency_overrides", {}).get(get_db_session, get_db_session)
    sessions = provider()
    session = await anext(sessions)
    try:
        return await live_token(session, token) is not None
    finally:
        await sessions.aclose()
