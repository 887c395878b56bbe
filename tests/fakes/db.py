"""Database helpers for tests: racing two sessions, an in-process client on the test's session."""
import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg


async def until_blocked(database_url: str, what: str) -> None:
    """Wait (up to 5 s) until some session of the test database waits on a lock: WHAT (a statement racing an
    uncommitted row of another session) has reached the database and is held there."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watch:
        for _ in range(100):
            waiting = await watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()")
            if (await waiting.fetchone())[0]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never waited on the other session")


@contextlib.asynccontextmanager
async def session_client(app, session, base_url: str = "http://testserver") -> AsyncIterator:
    """An httpx client on APP (in process) whose requests use the test's SESSION (its transaction, rolled back)."""
    import httpx

    from raiox.kit.deps import get_db_session

    async def _session_override():
        yield session
        await session.flush()

    app.dependency_overrides[get_db_session] = _session_override
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as http:
        yield http
