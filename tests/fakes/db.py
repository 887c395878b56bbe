"""Database helpers for tests that race two sessions."""
import asyncio

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
