"""What the `raiox` command prints for an operational failure, instead of a traceback.

`failure(exc)` gives one line naming the problem and the setting to check, and the exit code: 2 for a
configuration error, 1 for a service that failed (database, storage). None for anything else (a bug: its
traceback is shown). Database errors are worded from the driver's first line only: SQLAlchemy's own text
carries the statement and, unless the engine hides them, its parameters (a new token's hash).
"""

from pathlib import Path

from raiox.kit.errors import first_line

CONFIG, FAILED = 2, 1
DATABASE_HINT = "check RAIOX_DATABASE_URL and that the database server is running"
STORAGE_HINT = "check RAIOX_STORAGE_URL (and RAIOX_S3_* for s3://)"




def _raiox(exc) -> tuple[str, int]:
    from raiox.kit.errors import ConfigError, ServiceUnavailable

    if isinstance(exc, ConfigError):
        return exc.message, CONFIG
    if isinstance(exc, ServiceUnavailable) and "storage" in exc.message:
        return f"{exc.message} ({STORAGE_HINT})", FAILED
    return exc.message, FAILED


def _database(exc) -> tuple[str, int]:
    from psycopg import errors as pg
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    driver = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(exc, (OperationalError, InterfaceError, pg.OperationalError, pg.InterfaceError)):
        return f"database unreachable: {first_line(driver)} ({DATABASE_HINT})", FAILED
    if isinstance(driver, pg.UndefinedTable):
        return f"database error: {first_line(driver)} (run `raiox db upgrade`)", FAILED
    return f"database error: {first_line(driver)}", FAILED


def _under(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _ours(filename: str) -> bool:
    """Whether a file is in the data folder or the local storage folder (the settings may be what is broken)."""
    from urllib.parse import urlsplit

    try:
        from raiox.kit.settings import get_settings

        settings = get_settings()
        storage = urlsplit(settings.resolved_storage_url)
        folders = [settings.data_dir] + ([Path(storage.netloc + storage.path)] if storage.scheme == "file" else [])
        return any(_under(Path(filename), folder) for folder in folders)
    except Exception:  # noqa: BLE001 - no hint then, the plain message
        return False


def _os(exc: OSError) -> tuple[str, int]:
    what = f"{exc.strerror or first_line(exc)}: {exc.filename}" if exc.filename else first_line(exc)
    if exc.filename and _ours(str(exc.filename)):
        return f"{what} (check RAIOX_DATA_DIR and RAIOX_STORAGE_URL)", FAILED
    return what, FAILED


def failure(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for an operational failure, None for anything else."""
    import psycopg
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from raiox.kit.errors import RaioxError

    from alembic.util import CommandError
    from procrastinate.exceptions import ConnectorException

    if isinstance(exc, RaioxError):
        return _raiox(exc)
    if isinstance(exc, ConnectorException) and exc.__cause__ is not None:  # the job queue's wrapper of a driver error
        return failure(exc.__cause__)
    if isinstance(exc, CommandError) and "Can't locate revision" in str(exc):
        return (f"{first_line(exc)}: the database was migrated by another release of raiox; run the release that "
                "migrated it, or a newer one"), FAILED
    if isinstance(exc, (DBAPIError, psycopg.Error)):
        return _database(exc)
    if isinstance(exc, ArgumentError) and "URL" in str(exc):  # its text would echo the URL, password included
        return "RAIOX_DATABASE_URL is not a valid database URL", CONFIG
    if isinstance(exc, OSError):
        return _os(exc)
    return None
