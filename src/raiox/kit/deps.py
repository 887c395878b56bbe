"""FastAPI dependencies the routes share: the request's database session (`DbSession`).

Apart from `kit.db` so that what needs only the database (the `raiox` commands, the jobs) never imports FastAPI.
"""

from collections.abc import AsyncIterator

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import session_scope


async def get_db_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency (use ``DbSession``): the request owns the session and commits it when the handler succeeds."""
    async with session_scope() as session:
        yield session


# The request's session, committed as soon as the handler returns and before the answer is sent. FastAPI runs a yield
# dependency's exit after sending by default: a client (a browser following the panel's redirect, an API client
# reading what it just wrote) could act on a write not yet committed, or be told of one whose commit then failed.
DbSession = Depends(get_db_session, scope="function")
