"""The `committed` fixture's emptying (tests/conftest.py) leaves what `TRUNCATE <APP_TABLES> RESTART IDENTITY
CASCADE` left: every table empty, those that reference them too, every identity restarted."""

from sqlalchemy import text

from raiox.kit.db import session_scope

KEPT = {"alembic_version", "procrastinate_workers"}  # neither TRUNCATE's list nor its CASCADE reached them


async def _rows(conn, table: str) -> int:
    return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_the_emptying_empties_every_table_and_restarts_its_identities(committed, engine, empty_tables):
    async with session_scope() as session:
        await session.execute(text("INSERT INTO users (id, email, password_hash, role, active, failed_logins, "
                                   "created_at) VALUES "
                                   "(gen_random_uuid(), 'a@example.com', 'x', 'admin', true, 0, now())"))
        await session.execute(text("INSERT INTO login_locks (user_id, source, failures, updated_at) "
                                   "SELECT id, '10.0.0.1', 1, now() FROM users"))
        for _ in range(3):
            await session.execute(text("INSERT INTO audit_log (actor, action, details, created_at) "
                                       "VALUES ('test', 'probe', '{}', now())"))
    async with engine.connect() as conn:
        assert await _rows(conn, "login_locks") == 1 and await _rows(conn, "audit_log") == 3

    await empty_tables()

    async with engine.connect() as conn:
        tables = (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars()
        for table in set(tables) - KEPT:
            assert await _rows(conn, table) == 0, table
    async with session_scope() as session:
        first = (await session.execute(text("INSERT INTO audit_log (actor, action, details, created_at) "
                                            "VALUES ('test', 'probe', '{}', now()) RETURNING id"))).scalar_one()
    assert first == 1
