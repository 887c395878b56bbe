"""API bearer tokens: random 256-bit tokens, stored as sha256 (never in clear)."""

import hashlib
import secrets
from datetime import UTC, datetime

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import DbSession, get_db_session
from raiox.kit.errors import BadRequest, Forbidden, Unauthorized
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


# what a token may do; "all" (the default) is every scope
SCOPES = {
    "identify": "POST /identify and GET /implants",
    "cases": "GET /cases, GET /cases/{id}, POST /cases/{id}/retry",
    "review": "approve, reject, mark delivered, send again, revoke report links, mark or remove implants, read them "
              "again (POST/DELETE under /cases/{id})",
    "catalog": "add a case's films to the catalog (approve's add_to_catalog)",
    "metrics": "GET /metrics",
}
ALL = "all"


def token_scopes(scopes: list[str] | None) -> list[str]:
    """SCOPES checked (BadRequest naming an unknown one), without repeats; ["all"] when none is given."""
    if any(not s.strip() for s in scopes or []):  # `--scope "$UNSET"` must not become every right
        raise BadRequest(f"a token scope cannot be blank; one of: {', '.join([*SCOPES, ALL])}")
    chosen = list(dict.fromkeys(s.strip().lower() for s in scopes or []))
    unknown = [s for s in chosen if s not in SCOPES and s != ALL]
    if unknown:
        raise BadRequest(f"unknown token scope {unknown[0]!r}; one of: {', '.join([*SCOPES, ALL])}")
    return [ALL] if not chosen or ALL in chosen else chosen


def allows(token: ApiToken, scope: str) -> bool:
    return ALL in (token.scopes or []) or scope in (token.scopes or [])


async def create_token(session: AsyncSession, name: str, scopes: list[str] | None = None) -> str:
    """A new token (shown once); BadRequest when a live token has that name already (revoking by name would take
    both)."""
    name = token_name(name)
    live = select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)).limit(1)
    if (await session.execute(live)).first() is not None:
        raise BadRequest(f"a live token is named {name!r} already; pick another name or revoke that one first")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), prefix=token[:10], scopes=token_scopes(scopes)))
    await session.flush()
    return token


async def live_token(session: AsyncSession, token: str) -> ApiToken | None:
    """The unrevoked token whose hash TOKEN has."""
    query = select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def use_token(session: AsyncSession, token: str, scope: str | None = None) -> ApiToken | None:
    """The live TOKEN's row (its use recorded), None for an unknown or revoked one; Forbidden when it lacks SCOPE."""
    row = await live_token(session, token)
    if row is None:
        return None
    if scope is not None and not allows(row, scope):
        raise Forbidden(scope_refusal(row, scope))
    await session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=datetime.now(UTC)))
    return row


async def token_actor(session: AsyncSession, token: str, scope: str | None = None) -> str | None:
    """"token:NAME" for a live TOKEN with SCOPE (``use_token``)."""
    row = await use_token(session, token, scope)
    return None if row is None else f"token:{row.name}"


def scope_refusal(row: ApiToken, scope: str) -> str:
    return (f"this token may not do this (needs scope {scope!r}: {SCOPES[scope]}; its scopes: "
            f"{', '.join(row.scopes or [])})")


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


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.execute(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))).scalars())


async def revoke_token(session: AsyncSession, name_or_prefix: str) -> int:
    """Revoke the live tokens with this name or prefix (surrounding blanks ignored, as names are stored stripped);
    returns how many were revoked."""
    from sqlalchemy import or_

    name_or_prefix = name_or_prefix.strip()
    result = await session.execute(
        update(ApiToken)
        .where(or_(ApiToken.name == name_or_prefix, ApiToken.prefix == name_or_prefix), ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return result.rowcount or 0


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
