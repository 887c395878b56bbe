"""Database plumbing: the embedded PostgreSQL (pgserver) or a configured server, engine, sessions.

The request or the job that owns a session commits it; services and repositories never do.
"""

import atexit
import json
import signal
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
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


_servers: dict[str, object] = {}  # pgdata -> this process's handle on the embedded server


@contextmanager
def _signals_deferred(*, drop: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM held back until the block ends, then delivered to whatever handled them before; with DROP,
    dropped instead (an interrupted command's or server's own stop, `stop_embedded(drop_signals=True)`: a second
    Ctrl+C or SIGTERM meanwhile changes nothing, the command already ending as the first one asked). Starting or
    stopping the embedded server is never cut in the middle: a Ctrl+C or SIGTERM during initdb left a data dir
    without its databases (every later start failed), one while pg_ctl started the server (before pgserver listed
    this process as a holder, or this module kept the handle) a PostgreSQL nobody would stop, and one during
    pgserver's clean-up a server left running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: caught.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # (None: one set outside Python)
        for sig in () if drop else dict.fromkeys(caught):
            signal.raise_signal(sig)


def _embedded_server(pgdata: str):
    if pgdata in _servers:
        return _servers[pgdata]
    with _signals_deferred():
        return _start_embedded(pgdata)


def _start_embedded(pgdata: str):
    pgserver = _pgserver()
    Path(pgdata).mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(Path(pgdata))
    server = pgserver.get_server(pgdata)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DB};")
    log.info("embedded_postgres_ready", pgdata=pgdata)
    _servers[pgdata] = server
    return server


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver stops the embedded server when the last process holding it exits, counting them in
    ``.handle_pids.json``; a process killed before its exit hook ran (SIGKILL, the OOM killer) stayed listed, and
    the server then outlived every later process. Processes no longer running are dropped (under pgserver's lock)."""
    import psutil
    from pgserver.postgres_server import PostgresServer

    path = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        pids = json.loads(path.read_text()) if path.exists() else []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            path.write_text(json.dumps(alive))
            log.info("embedded_postgres_stale_handles", dropped=sorted(set(pids) - set(alive)))


async def release_embedded() -> None:
    """Give back this process's handle on the embedded PostgreSQL (pooled connections closed first); pgserver
    stops the server when no other process holds one. ``raiox serve`` calls it when the app shuts down: uvicorn
    ends a SIGTERM by raising the signal again, which kills the process before exit hooks (pgserver's) run."""
    if not _servers:
        return
    if get_engine.cache_info().currsize:
        await get_engine().dispose()
    stop_embedded()


def stop_embedded(*, drop_signals: bool = False) -> None:
    """Give back this process's handle on the embedded PostgreSQL, stopping it when no other process holds one (a
    server's start-up cut short by SIGTERM or Ctrl+C; `release_embedded` once the app ran). Connections still open
    only make PostgreSQL's fast shutdown end them. A Ctrl+C or SIGTERM meanwhile waits for the stop, then is
    delivered; with DROP_SIGNALS (the stop of a process already interrupted: `cli.RaioxGroup`, `cli.stopping_cleanly`)
    it is dropped."""
    with _signals_deferred(drop=drop_signals):
        for pgdata, server in list(_servers.items()):
            server.cleanup()  # stops the server if this process was the last holder (pgserver's cleanup_mode "stop")
            # pgserver unregisters its exit hook only in cleanup_mode "delete": left, it took the machine-wide lock
            # again at this process's exit, to find the handle already given back (waiting on every other raiox
            # process's start, stop or exit of any data dir)
            atexit.unregister(server._cleanup)
            type(server)._instances.pop(Path(pgdata), None)  # joining again registers this process again
            del _servers[pgdata]
            log.info("embedded_postgres_released", pgdata=pgdata)


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
    """The app's engine. ``hide_parameters``: an error's text (printed, logged) never carries the statement's
    values, which can be secrets (a new token's hash) or personal data."""
    settings = get_settings()
    kwargs.setdefault("hide_parameters", True)
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


LIKE_ESCAPE = "\\"


def literal_like(text: str, *, contains: bool = True) -> str:
    """A LIKE pattern that matches ``text`` literally (``%``, ``_`` and the escape character escaped; use with
    ``escape=LIKE_ESCAPE``), anywhere in the value when ``contains``: a search for "50%" or "a_b" finds those
    characters instead of every row."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%" if contains else escaped


# Portuguese (and other Latin) accented letters, both cases, and their plain letters: `translate` needs no extension
# (unaccent) and, unlike lower() under a "C" collation, folds the accented capitals too
ACCENTED = "áàâãäåéèêëíìîïóòôõöúùûüçñýÿÁÀÂÃÄÅÉÈÊËÍÌÎÏÓÒÔÕÖÚÙÛÜÇÑÝ"
PLAIN = "aaaaaaeeeeiiiiooooouuuucnyyaaaaaaeeeeiiiiooooouuuucny"


def folded(column):
    """COLUMN as a search compares it: lower case, accents dropped (with `fold_text` on the other side)."""
    from sqlalchemy import func

    return func.lower(func.translate(column, ACCENTED, PLAIN))


def fold_text(text: str) -> str:
    """TEXT as `folded` leaves a column's value: "Conexão" and "CONEXAO" both read "conexao"."""
    return text.translate(str.maketrans(ACCENTED, PLAIN)).lower()
