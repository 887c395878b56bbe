"""structlog configuration: console for development, JSON in production; secrets redacted."""

import logging
import re
import sys

import structlog

_SECRET_QUERY = re.compile(r"(?i)((?:api_?key|token|secret|password)=)[^&\s\"']+")
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Any log value containing this string has it masked."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    text = _SECRET_QUERY.sub(r"\1***", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


# anything around an @ up to a space, quote or angle bracket: a local part with commas, brackets, escapes
# ("jo\xc3\xa3o" in a bytes repr) or in quotes ("ana maria"@…) is masked whole, never cut where a name shows
_ADDRESS = re.compile(r"""(?:"[^"\n]*"|[^\s"'@<])+@[^\s"'@<>,;()]+""")


def mask_addresses(text: str) -> str:
    """TEXT with every e-mail address replaced (a dentist's address quoted by an SMTP reply, for the logs)."""
    return _ADDRESS.sub("<e-mail>", text)


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return type(value)(_redacted(v) for v in value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def _redact_processor(_logger, _name, event_dict: dict) -> dict:
    for key, value in event_dict.items():
        event_dict[key] = _redacted(value)
    return event_dict


class _Stderr:
    """Whatever `sys.stderr` is at write time (test runners swap and close it between tests)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _LineLogger:
    """structlog's logger: each line written whole, in one write, with no lock. structlog's PrintLogger holds a
    non-reentrant lock while it prints: a line logged by a signal handler (`cli.stopping_now`'s `worker_stopped_now`)
    or a finalizer (`cli._redelivering_swallowed`'s `stop_signal_swallowed`) that interrupted the main thread inside
    it waited on that lock for ever, SIGINT and SIGTERM ignored by then: the worker never stopped. One write of a
    whole line needs no lock (the standard library's handler writes its lines so too): lines of several threads, or
    of a handler and the code it interrupted, never mix."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")  # (looked up at each line, as `_Stderr` does)
        sys.stderr.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_LINE_LOGGER = _LineLogger()


# procrastinate's INFO lines per job (deferred, started, succeeded) and per periodic tick: requeue_stalled_jobs runs
# every minute, three lines a minute all day long; and "Adding tasks from blueprint" (loading_blueprint), written
# whenever its App is built, so by every `raiox` command that imports `kit.jobs`. Its start-up, stop and retry lines
# stay INFO, its warnings WARNING, failures ERROR.
_CHATTER_ACTIONS = {"start_job", "job_success", "jobs_deferred", "periodic_task_deferred",
                    "periodic_task_already_deferred", "loading_blueprint"}


def _job_chatter_as_debug(record: logging.LogRecord) -> bool:
    """procrastinate's per-job and blueprint INFO records are DEBUG here (shown at RAIOX_LOG_LEVEL=debug only)."""
    if record.name.startswith("procrastinate") and getattr(record, "action", None) in _CHATTER_ACTIONS \
            and record.levelno == logging.INFO:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
    return True


def _stdlib_handler(renderer) -> logging.Handler:
    """Records of the standard library's loggers (uvicorn, procrastinate, alembic, ...) rendered like ours, in both
    formats: with RAIOX_LOG_FORMAT=json every line of the stream is one JSON object (`jq`, journald's shippers read it
    whole), tracebacks included; on the console, the same columns as structlog's lines (they were bare messages)."""
    handler = logging.StreamHandler(_Stderr())
    handler.addFilter(_job_chatter_as_debug)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _redact_processor, renderer],
    ))
    return handler


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    logging.basicConfig(handlers=[_stdlib_handler(renderer)], level=level.upper(), force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _LINE_LOGGER,
        cache_logger_on_first_use=False,
    )
    for noisy in ("httpx", "httpcore"):  # their INFO lines carry full URLs (tokens, apiKey): never log them
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pgserver narrates every initdb/pg_ctl call with its whole output; alembic lists its plugins: our own
    # `embedded_postgres_ready` and alembic's "Running upgrade" lines say what matters
    for chatty in ("pgserver", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
