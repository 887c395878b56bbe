"""The `committed` fixture's emptying (tests/conftest.py) leaves what `TRUNCATE <APP_TABLES> RESTART IDENTITY
CASCADE` left: every table empty, those that reference them too, every identity restarted."""

from sqlalchemy import text

from conftest import APP_TABLES, _emptying_statements
from raiox.kit.db import session_scope


async def _rows(conn, table: str) -> int:
    return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def test_the_emptying_empties_every_table_and_restarts_its_identities(committed, engine):
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

    async with engine.connect() as conn:
        statements = await _emptying_statements(conn)
    assert statements[0].startswith("LOCK TABLE") and "login_locks" in statements[0]  # CASCADE's reach
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))

    async with engine.connect() as conn:
        for table in [*APP_TABLES, "login_locks"]:
            assert await _rows(conn, table) == 0, table
    async with session_scope() as session:
        first = (await session.execute(text("INSERT INTO audit_log (actor, action, details, created_at) "
                                            "VALUES ('test', 'probe', '{}', now()) RETURNING id"))).scalar_one()
    assert first == 1
