"""Typed errors: each carries its HTTP status and a stable machine-readable code."""


class RaioxError(Exception):
    status_code = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds: answered as `Retry-After` (a 429 that knows when; a 503's own default)

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(RaioxError):
    status_code = 400
    code = "bad_request"


class Unauthorized(RaioxError):
    status_code = 401
    code = "unauthorized"


class Forbidden(RaioxError):
    status_code = 403
    code = "forbidden"


class NotFound(RaioxError):
    status_code = 404
    code = "not_found"


class Conflict(RaioxError):
    status_code = 409
    code = "conflict"


class Unprocessable(RaioxError):
    status_code = 422
    code = "unprocessable"


class TooLarge(RaioxError):
    status_code = 413
    code = "too_large"


class TooManyRequests(RaioxError):
    status_code = 429
    code = "too_many_requests"


class ServiceUnavailable(RaioxError):
    """An outage (database, object storage, upload host): nothing was lost, the same request works again later
    (answered with `Retry-After`)."""

    status_code = 503
    code = "unavailable"


class ConfigError(RaioxError):
    """A required setting is missing or malformed: startup must stop with this message."""

    code = "config_error"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


UNSTORABLE = ("a value cannot be stored or searched for: it holds a NUL character, or is longer or larger than "
              "the database allows")


def unstorable(exc: Exception) -> Unprocessable:
    """A value the database refuses (SQLAlchemy's ``DataError``: a NUL character in text, a string over its
    column's length, a number out of range) is the client's input, not a server fault: 422, never a 500. The
    request's session has already been rolled back by its dependency when the app's handler calls this.

    The log line names the error (class, SQLSTATE) and, when the database says, the table, column, constraint and
    type, never the database's message: it may quote the refused value ("invalid input syntax for type uuid: ..."),
    which is the client's data (a name, an e-mail address)."""
    from raiox.kit.logging import get_logger

    get_logger(__name__).info("request.unstorable_value", **database_error_fields(exc))
    return Unprocessable(UNSTORABLE)


def database_error_fields(exc: Exception) -> dict[str, str]:
    """What a database error is, without anything it quotes: the driver's error class, the SQLSTATE, and the schema
    names (table, column, constraint, data type) PostgreSQL reports with it."""
    orig = getattr(exc, "orig", None) or exc
    fields = {"error": type(orig).__name__}
    if sqlstate := getattr(orig, "sqlstate", None):
        fields["sqlstate"] = str(sqlstate)
    diag = getattr(orig, "diag", None)
    for name in ("table", "column", "constraint", "datatype"):
        if value := getattr(diag, f"{name}_name", None):
            fields[name] = str(value)
    return fields


def database_errors() -> tuple[type[Exception], ...]:
    """What the database raises when it cannot be reached or dropped the connection (a restart, a network cut, every
    pooled connection busy): an outage, not a bug."""
    import psycopg
    import psycopg_pool
    from sqlalchemy.exc import InterfaceError, OperationalError

    return psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout, OperationalError, InterfaceError


DATABASE_DOWN = "the database is unavailable at the moment; nothing was recorded, try again shortly"


def database_unavailable(exc: Exception) -> ServiceUnavailable:
    """A database outage met by a request (``database_errors``): 503, so that the caller (Jotform's webhook, a
    client, the operator) tries again, never a 500. The request's transaction was rolled back: nothing half-done."""
    from raiox.kit.logging import get_logger

    get_logger(__name__).warning("database_unavailable", error=first_line(getattr(exc, "orig", None) or exc))
    return ServiceUnavailable(DATABASE_DOWN)
