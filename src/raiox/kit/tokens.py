"""API bearer tokens: random 256-bit tokens, stored as sha256 (never in clear); their names and scopes.

The store alone (no FastAPI: `raiox tokens` imports it); the API's checks of a request's token are `kit.auth`.
"""

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.errors import BadRequest, Forbidden
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
