"""A small psycopg connection pool for the webhook's hot path.

An SQLAlchemy session costs several times the CPU of the single statement a webhook delivery needs
(pool pre-ping, ORM session, greenlet hops); at hundreds of deliveries a second that is the budget.
The pool opens lazily in the running event loop and is closed by the app's lifespan. A connection is checked
before it is lent (one round trip: a database restart leaves no dead connection to fail a webhook on), and a
request waits at most WAIT_S for one: a database outage answers 503 quickly (app.py), not after 30 s.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from raiox.kit.db import libpq_url
from raiox.kit.settings import get_settings

WAIT_S = 5.0
_pool: AsyncConnectionPool | None = None
_loop: asyncio.AbstractEventLoop | None = None


async def _get_pool() -> AsyncConnectionPool:
    global _pool, _loop
    loop = asyncio.get_running_loop()
    if _pool is None or _loop is not loop:
        size = get_settings().db_pool_size
        _pool = AsyncConnectionPool(libpq_url(), min_size=1, max_size=size, open=False, name="raiox-webhook",
                                    kwargs={"autocommit": False, "connect_timeout": 5},
                                    check=AsyncConnectionPool.check_connection, timeout=WAIT_S)
        _loop = loop
        await _pool.open()
    return _pool


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncConnection]:
    """A pooled connection inside a transaction: committed on success, rolled back on error."""
    pool = await _get_pool()
    async with pool.connection() as conn:
        yield conn


async def close() -> None:
    global _pool, _loop
    if _pool is not None and _loop is asyncio.get_running_loop():
        await _pool.close()
    _pool, _loop = None, None
