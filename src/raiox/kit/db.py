"""Database plumbing: the embedded PostgreSQL (pgserver) or a configured server, engine, sessions.

The request or the job that owns a session commits it; services and repositories never do.
"""

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from raiox.kit.logging import get_logger
from raiox.kit.settings import Settings, get_settings

log = get_logger(__name__)
EMBEDDED_DB = "raiox"


def _pgserver():
    """The ``pgserver`` module, imported without its warning on machines without XDG_RUNTIME_DIR (a
    server, a container, CI): it then keeps its lock file under /tmp/runtime-UID, which is fine, and
    every command printed two lines about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver
    return pgserver


@lru_cache
def _embedded_server(pgdata: str):
    pgserver = _pgserver()
    Path(pgdata).mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DB};")
    log.info("embedded_postgres_ready", pgdata=pgdata)
    return server


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL with pgvector under DATA_DIR/pg; libpq URL."""
    server = _embedded_server(str((data_dir / "pg").resolve()))
    return server.get_uri(EMBEDDED_DB)


def libpq_url(settings: Settings | None = None) -> str:
    """A plain `postgresql://` URL (for psycopg, procrastinate, pg_dump)."""
    settings = settings or get_settings()
    if settings.embedded_database:
        return embedded_url(settings.data_dir)
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def sqlalchemy_url(settings: Settings | None = None) -> str:
    url = make_url(libpq_url(settings)).set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def create_engine(url: str, **kwargs) -> AsyncEngine:
    settings = get_settings()
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_max_overflow)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


@lru_cache
def get_engine() -> AsyncEngine:
    return create_engine(sqlalchemy_url())


@lru_cache
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)


@asynccontextmanager
async def session_scope(maker: async_sessionmaker[AsyncSession] | None = None) -> AsyncIterator[AsyncSession]:
    """A unit of work for jobs and CLI commands: commit on success, roll back on error."""
    async with (maker or get_sessionmaker())() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_db_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request owns the session and commits it when the handler succeeds."""
    async with session_scope() as session:
        yield session
