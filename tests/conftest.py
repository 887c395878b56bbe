"""Shared fixtures: a real PostgreSQL + pgvector built with the real migrations.

- `database_url`: embedded PostgreSQL (pgserver) in a temporary folder, or RAIOX_TEST_DATABASE_URL;
  a fresh database per test run, migrated with Alembic.
- `session`: an AsyncSession inside one transaction that is rolled back after the test (commits in
  the code under test become savepoints).
- `committed`: for tests that need several connections (worker, server thread); tables are emptied
  afterwards.
- `client`: an httpx client on the ASGI app whose requests use the test's `session`.
"""

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

logging.getLogger("pgserver").setLevel(logging.WARNING)

APP_TABLES = [
    "fixture_results", "case_rankings", "fixtures", "case_images", "case_events", "deliveries", "audit_log",
    "cases", "reference_embeddings", "reference_images", "implant_systems", "api_tokens", "users", "login_throttle",
    "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
]

_SERVERS: list = []


def _server_url(tmp_root: Path) -> str:
    if os.environ.get("RAIOX_TEST_DATABASE_URL"):
        return os.environ["RAIOX_TEST_DATABASE_URL"]
    import pgserver

    server = pgserver.get_server(str(tmp_root / "pg"))
    _SERVERS.append(server)
    return server.get_uri("postgres")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    # Outside pytest's numbered temp folders: concurrent pytest runs prune each other's old folders.
    root = Path(os.environ.get("RAIOX_TEST_PGDATA_ROOT") or tempfile.mkdtemp(prefix="raiox-test-pg-"))
    admin_url = _server_url(root)
    name = f"raiox_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # a throw-away database: a commit need not wait for its WAL to reach the disk (what a crash could lose, a
        # test database does not miss); every connection, a server's or a worker's subprocess too, takes it up
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    data_dir = tmp_path_factory.mktemp("raiox-data")
    os.environ.update(
        RAIOX_DATABASE_URL=url,
        RAIOX_DATA_DIR=str(data_dir),
        RAIOX_STORAGE_URL=f"file://{data_dir}/storage",
        RAIOX_WEBHOOK_SECRET="test-webhook-secret",
        RAIOX_JOTFORM_API_KEY="test-jotform-key",
        RAIOX_SESSION_SECRET="test-session-secret",
    )
    _reset_caches()
    from raiox.kit import migrate

    engine = create_sync_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        migrate.upgrade(conn)
    engine.dispose()
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not os.environ.get("RAIOX_TEST_DATABASE_URL") and not os.environ.get("RAIOX_TEST_PGDATA_ROOT"):
        for server in _SERVERS:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _reset_caches() -> None:
    from raiox.kit import db, settings, storage

    settings.get_settings.cache_clear()
    db.get_engine.cache_clear()
    db.get_sessionmaker.cache_clear()
    storage._storage = None


@pytest.fixture(autouse=True)
def _settings_read_afresh():
    """Settings cached while a test had a RAIOX_* variable set (monkeypatch) must not outlive the test: a later test
    would read, say, a model file that test pointed at and removed."""
    yield
    from raiox.kit.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def migrated_data_dir(tmp_path_factory) -> Path:
    """A RAIOX_DATA_DIR whose embedded database `raiox db upgrade` created and migrated, its PostgreSQL stopped: built
    once a session, never used itself; `fakes.embedded.copy_data_dir` gives a test its own copy."""
    from fakes.embedded import migrated_data_dir

    return migrated_data_dir(tmp_path_factory.mktemp("migrated-data-dir"))


@pytest.fixture(scope="session")
async def engine(database_url):
    from raiox.kit.db import get_engine

    yield get_engine()
    await get_engine().dispose()


@pytest.fixture
async def session(engine) -> AsyncIterator[AsyncSession]:
    async with engine.connect() as conn:
        outer = await conn.begin()
        sess = AsyncSession(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        try:
            yield sess
        finally:
            await sess.close()
            await outer.rollback()


_EMPTYING: list[str] = []


async def _emptying_statements(conn) -> list[str]:
    """What `TRUNCATE <APP_TABLES> RESTART IDENTITY CASCADE` does, in statements about ten times faster on the few
    rows a test leaves (a TRUNCATE costs about 0.1 s whatever the rows): every table locked first (as TRUNCATE
    locks them: a transaction still running finishes before, none starts until the commit), the tables referencing
    them too (CASCADE), emptied children first, and their sequences restarted (RESTART IDENTITY)."""
    if not _EMPTYING:
        keys = (await conn.execute(text(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"))).all()
        owned = (await conn.execute(text(
            "SELECT t.oid::regclass::text, s.oid::regclass::text FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
            "JOIN pg_class t ON t.oid = d.refobjid WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i')"))).all()
        tables = set(APP_TABLES)
        while referencing := {child for child, parent in keys if parent in tables and child not in tables}:
            tables |= referencing
        order, left = [], set(tables)
        while left:
            ready = sorted(t for t in left if not any(p == t and c in left and c != t for c, p in keys))
            assert ready, f"foreign keys in a cycle among {sorted(left)}: empty them with TRUNCATE"
            order += ready
            left -= set(ready)
        _EMPTYING[:] = (["LOCK TABLE " + ", ".join(sorted(tables)) + " IN ACCESS EXCLUSIVE MODE"]
                        + [f"DELETE FROM {table}" for table in order]
                        + [f"ALTER SEQUENCE {seq} RESTART" for table, seq in sorted(owned) if table in tables])
    return _EMPTYING


async def _empty_tables(engine) -> None:
    async with engine.begin() as conn:
        for statement in await _emptying_statements(conn):
            await conn.execute(text(statement))


@pytest.fixture
def empty_tables(engine):
    """`await empty_tables()`: what `committed` does after the test (tests/kit/test_committed_isolation.py)."""
    return lambda: _empty_tables(engine)


@pytest.fixture
async def committed(engine) -> AsyncIterator[None]:
    """Lets the test commit for real (several connections); empties every table afterwards. A server the test
    started may still be answering a request the browser sent last (its transaction reading tables in another
    order than the emptying locks them): a deadlock then rolls one of the two back, and the emptying is tried
    again."""
    import asyncio

    from sqlalchemy.exc import OperationalError

    yield
    for attempt in range(5):
        try:
            await _empty_tables(engine)
            return
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


@pytest.fixture
async def client(session) -> AsyncIterator:
    from fakes.db import session_client
    from raiox.app import create_app

    async with session_client(create_app(), session) as http:
        yield http


@pytest.fixture
def configure(monkeypatch):
    """Set RAIOX_* settings for the rest of the test (`configure(MAX_PIXELS="1000")`; settings cache cleared both
    ways, the previous values back afterwards)."""
    from raiox.kit.settings import get_settings

    def setting(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"RAIOX_{name}", value)
        get_settings.cache_clear()

    yield setting
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def shipped_model_copy(tmp_path):
    """`copy("connection-v2", raiox_zoom="{...}")`: a copy of the shipped model file models/NAME.onnx in tmp_path,
    its ONNX metadata entries set to the given texts (None: the entry left out); the copy's path."""
    import onnx

    from raiox.vision.embedders import shipped_model

    def copy(name: str, file: str | None = None, **entries: str | None) -> Path:
        model = onnx.load(str(shipped_model(name)))
        kept = {p.key: p.value for p in model.metadata_props}
        kept.update(entries)
        del model.metadata_props[:]
        for key, value in kept.items():
            if value is not None:
                model.metadata_props.add(key=key, value=value)
        out = tmp_path / (file or f"{name}-copy.onnx")
        onnx.save(model, str(out))
        return out

    return copy
