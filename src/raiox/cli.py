"""The `raiox` command line. Each domain contributes a Typer sub-app; long work shows Rich progress.

An operational failure (configuration, database or storage unreachable, a file that cannot be read) ends any
command with one line on stderr and exit code 2 (configuration) or 1 (the rest), not a traceback;
`raiox --debug ...` (or RAIOX_DEBUG=1) shows the traceback. Ctrl+C prints "interrupted" and exits 130; SIGTERM is
that Ctrl+C (`sigterm_as_ctrl_c`), "terminated (SIGTERM)" and exit 143 (the servers and the worker exit 0 on either).
"""

import asyncio
import sys
from contextlib import contextmanager

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from raiox.kit.errors import ConfigError


class RaioxGroup(TyperGroup):
    """The root command: every subcommand runs inside `invoke`, where failures become one line (`failure`)."""

    def invoke(self, ctx: click.Context):
        from raiox.kit.cli_errors import failure

        with sigterm_as_ctrl_c() as terminated:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                _release_embedded_undisturbed()
                console.print("terminated (SIGTERM)" if terminated else "interrupted")
                raise typer.Exit(143 if terminated else 130) from None
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise  # --help, a usage error, a command's own exit code: no failure to word (nor drivers to import)
            except Exception as exc:
                found = None if ctx.params.get("debug") else failure(exc)
                if found is None:
                    raise
                message, code = found
                console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
                raise typer.Exit(code) from None


@contextmanager
def sigterm_as_ctrl_c():
    """Around every command (`RaioxGroup.invoke`): SIGTERM (systemd's stop, `kill`, `timeout`) does what Ctrl+C would
    do at that moment. Python's default ended the process outright: no rollback, no exit hook, the embedded PostgreSQL
    left running until the next `raiox` process. Whatever handles SIGINT then handles it: `asyncio.run`'s cancels the
    main task (its transaction rolled back on the way out), Python's default raises KeyboardInterrupt, an ignored one
    ignores it too; the servers' and the worker's own handlers (`stopping_cleanly`, `stopping_now`, uvicorn's) take
    both signals over while they run. Yields the SIGTERMs taken, for the command's last line and exit status (143)."""
    import signal
    import threading

    terminated: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def as_ctrl_c(number: int, frame) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if handler == signal.SIG_IGN:
            return
        terminated.append(number)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIG_DFL, or one set outside Python
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _release_embedded_undisturbed() -> None:
    """A command interrupted (Ctrl+C, SIGTERM) gives its handle on the embedded PostgreSQL back before it ends,
    stopping it when no other process holds it, with a second Ctrl+C or SIGTERM dropped meanwhile
    (`kit.db.stop_embedded(drop_signals=True)`): one during pgserver's exit hook cut it and left the server running."""
    db = sys.modules.get("raiox.kit.db")  # not imported: the command never joined it
    if db is not None:
        db.stop_embedded(drop_signals=True)


app = typer.Typer(name="raiox", help="Raiox AI: identify dental implant systems from X-rays.", no_args_is_help=True,
                  cls=RaioxGroup)


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", envvar="RAIOX_DEBUG",
                                    help="Show the traceback of a failure instead of its one-line message.")) -> None:
    """Raiox AI: identify dental implant systems from X-rays."""
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

from raiox.vision import cli as vision_cli  # noqa: E402

app.add_typer(vision_cli.app, name="vision")

from raiox.catalog import cli as catalog_cli  # noqa: E402

app.add_typer(catalog_cli.catalog_app, name="catalog")
app.add_typer(catalog_cli.tokens_app, name="tokens")
app.command("identify")(catalog_cli.identify)

from raiox.cases import cli as cases_cli  # noqa: E402

app.add_typer(cases_cli.cases_app, name="cases")
console = Console(stderr=True)


def _settings():
    """The settings (one line and exit 2 when they are invalid), and logging configured from them: every log line
    on stderr in RAIOX_LOG_FORMAT, from the first one (`embedded_postgres_ready` went to stdout in structlog's
    default format, into the tab-separated rows of `raiox users list`)."""
    from raiox.kit.logging import configure_logging
    from raiox.kit.settings import get_settings

    try:
        settings = get_settings()
    except ConfigError as exc:
        console.print(f"[red]{escape(exc.message)}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def migrate() -> None:
    """Upgrade the schema to the newest revision (idempotent, serialised by an advisory lock)."""
    from raiox.kit import migrate as migrations

    migrations.upgrade()


def database_ready() -> None:
    """Before a server or a worker starts: the database answers and is migrated. A database that does not answer
    yet (every host booting together, the database restarting) is waited for, RAIOX_DATABASE_WAIT_S in all, so that
    systemd's restarts do not run out meanwhile; then, or at once for a database not migrated, the command's one-line
    error (exit 1, naming the setting or `raiox db upgrade`) instead of a traceback from the server's start-up."""
    import time

    import psycopg

    from raiox.kit.db import libpq_url
    from raiox.kit.logging import get_logger

    deadline = time.monotonic() + _settings().database_wait_s
    while True:
        try:
            with psycopg.connect(libpq_url(), connect_timeout=5) as conn:
                conn.execute("SELECT 1 FROM alembic_version")
            return
        except psycopg.OperationalError as exc:  # unreachable (not "not migrated": that is a ProgrammingError)
            if time.monotonic() + 3 > deadline:
                raise
            get_logger(__name__).warning("waiting_for_database", error=str(exc).splitlines()[0] if str(exc) else "")
            time.sleep(3)


def embedder_ready(keep: bool = True) -> None:
    """Before a server or a worker starts: the configured embedder (RAIOX_EMBEDDER) loads, and so do the readers
    beside it (RAIOX_CONNECTION_MODEL, RAIOX_FEATURE_MODEL, RAIOX_ENDS_MODEL), their metadata read. One that cannot
    (unknown name, missing, cut short, not a model, broken metadata) is the configuration error naming the setting,
    one line and exit 2, not a traceback from every case's analysis later (and a /readyz that never turns ready).
    KEEP: the loaded models stay cached for this process's own use (not for the supervisor of --workers processes)."""
    from raiox.catalog.cli import _embedder
    from raiox.vision.embedders import _build
    from raiox.vision.onnxrt import session
    from raiox.vision.pipeline import load_readers

    load_readers(_embedder().model_id)
    if not keep:
        _build.cache_clear()
        session.cache_clear()


@contextmanager
def listening(host: str, port: int):
    """Before a server starts anything (the embedded database, migrations, the app): HOST:PORT, bound and listening
    now, as uvicorn would bind it (SO_REUSEADDR: a port a stopped server left in TIME_WAIT is free; every address
    HOST resolves to, IPv6 ones IPv6 only). The sockets are handed to uvicorn (`serve_on`), so that no other
    process can take the port between this check and the server's start. A port already in use is the command's one
    line, exit 1 (uvicorn would have found out only once the app had started, with its own log line and exit code 3;
    systemd's units restart on any failure), and a HOST that is no address is refused as a bad --host. Closed on the
    way out."""
    import errno
    import socket

    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise typer.BadParameter(f"{host!r} is not an address this machine can listen on ({exc.strerror})",
                                 param_hint="--host") from None
    opened = []
    try:
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            opened.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)  # uvicorn's backlog; listening, the port is ours alone (a bound one may be shared)
            sock.set_inheritable(True)  # --workers: the server processes serve the same sockets
    except OSError as exc:
        for sock in opened:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = (f"port {port} on {host} is already in use (another server listens there: stop it, or choose "
                   "another --port)")
        else:
            why = f"cannot listen on port {port} on {host}: {exc.strerror or exc}"
        console.print(f"[red]error:[/red] {escape(why)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


@contextmanager
def stopping_cleanly():
    """Around a server's or a worker's start-up and run (`raiox serve`, `raiox admin`, `raiox worker`): SIGTERM
    (systemd's stop, `kill`) is Ctrl+C's KeyboardInterrupt, and either one, at any point, gives back the embedded
    PostgreSQL (stopped when no other process holds it) and ends the command with exit 0. A SIGTERM while the server
    or the worker started (the models loading, the embedded database booting, the migrations) killed the process
    outright and left the database running, and one once uvicorn had shut the app down ended it with 143: uvicorn
    raises the signal again, to the handler it found.
    What the interruption makes fail after a stop was asked for is that stop too (ONNX Runtime reports a
    KeyboardInterrupt in its session's start-up as its own error: the embedder's configuration error, exit 2)."""
    import signal

    from raiox.kit.db import stop_embedded
    from raiox.kit.logging import get_logger

    asked: list[int] = []

    def interrupt(number: int, _frame) -> None:
        asked.append(number)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupted = False
    try:
        with _redelivering_swallowed(asked):
            yield
    except (KeyboardInterrupt, Exception) as exc:  # (one once uvicorn served ends in serve_on)
        if not asked and not isinstance(exc, KeyboardInterrupt):
            raise
        interrupted = True
        get_logger(__name__).info("stopped_while_starting", signal=signal.Signals(asked[0]).name if asked else None)
    finally:
        try:
            stop_embedded(drop_signals=True)  # a second Ctrl+C or SIGTERM while PostgreSQL stops is dropped
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if interrupted:
        raise typer.Exit(0)


@contextmanager
def _redelivering_swallowed(asked: list[int]):
    """`stopping_cleanly`'s KeyboardInterrupt raised while Python runs a finalizer (a weakref or garbage collector
    callback, `__del__`: SQLAlchemy's during the app's import) is printed as "Exception ignored" and dropped: the
    start-up went on and the server then ran forever, the stop asked for lost. So is one raised in a callback that a
    C extension calls (psycopg's notice handler, while the migrations run), which it also printed as a bare traceback
    (`sys.excepthook`: a line that is not JSON in a RAIOX_LOG_FORMAT=json stream). Such a one is logged once,
    `stop_signal_swallowed`, and signalled again to the main thread a moment later (the callback over by then),
    until the stop is under way."""
    import signal
    import threading
    import traceback

    from raiox.kit.logging import get_logger

    stopping = threading.Event()
    pending = threading.Event()  # a signal on its way again: what the same interruption reports next is that one
    previous_hook, previous_excepthook = sys.unraisablehook, sys.excepthook

    def again(number: int) -> None:
        if not stopping.wait(0.1):
            pending.clear()
            signal.pthread_kill(threading.main_thread().ident, number)

    def ours(exc_type) -> bool:
        return bool(asked) and issubclass(exc_type, KeyboardInterrupt) and not stopping.is_set()

    def redeliver(inside: str) -> None:
        if pending.is_set():
            return
        pending.set()
        try:
            get_logger(__name__).warning("stop_signal_swallowed", signal=signal.Signals(asked[-1]).name,
                                         inside=inside, action="signalled again")
        except KeyboardInterrupt:  # (this hook interrupted too: the thread below signals once more)
            pass
        threading.Thread(target=again, args=(asked[-1],), name="raiox-stop-again", daemon=True).start()

    def swallowed(unraisable) -> None:
        if not ours(unraisable.exc_type):
            previous_hook(unraisable)
            return
        redeliver(repr(unraisable.object))

    def printed(exc_type, exc, tb) -> None:
        if not ours(exc_type):
            previous_excepthook(exc_type, exc, tb)
            return
        interrupted = [(frame.f_code, line) for frame, line in traceback.walk_tb(tb)
                       if frame.f_code.co_filename != __file__]  # (the last frame is the signal handler's, here)
        redeliver("a C extension's callback" if not interrupted else
                  f"{interrupted[-1][0].co_name} ({interrupted[-1][0].co_filename}:{interrupted[-1][1]})")

    sys.unraisablehook, sys.excepthook = swallowed, printed
    try:
        yield
    finally:
        stopping.set()
        if sys.unraisablehook is swallowed:
            sys.unraisablehook = previous_hook
        if sys.excepthook is printed:
            sys.excepthook = previous_excepthook


@contextmanager
def stopping_now():
    """Around a started worker (`raiox worker`): procrastinate takes the first SIGTERM or Ctrl+C over, fetches no more
    jobs and waits for the running ones to finish; the next one, or one before procrastinate's, ends the process at
    once, as a kill would, with its running jobs left `doing`: the next worker's `requeue_stalled` retries them (or
    gives them up and tells the case). Unwound through asyncio (`stopping_cleanly`'s KeyboardInterrupt), it cancelled
    them instead, and what procrastinate recorded of each raced the closing of its pool: a traceback per job when the
    pool was closed first, else a retry that cost an attempt, or on the last one `aborted`, which nothing retries
    (the case left in processing). The embedded PostgreSQL is stopped first, and the command exits 0 (1, logged
    `worker_stop_failed`, when that stop failed)."""
    import os
    import signal

    from raiox.kit.db import stop_embedded
    from raiox.kit.logging import get_logger

    stops = (signal.SIGINT, signal.SIGTERM)

    def now(number: int, _frame) -> None:
        # Never swallowed as `stopping_cleanly`'s KeyboardInterrupt can be (`_redelivering_swallowed`): this raises
        # nothing into the code it interrupts, a finalizer's included, and ends the process there, whatever the
        # clean-up before raised (else, run in a finalizer, that error was dropped as "Exception ignored" and the
        # worker ran on with both signals ignored: no stop would ever end it). Exit 1 when the clean-up failed.
        code = 1
        try:
            for sig in stops:
                signal.signal(sig, signal.SIG_IGN)
            get_logger(__name__).warning("worker_stopped_now", signal=signal.Signals(number).name,
                                         running_jobs="left doing, for the next worker to retry")
            stop_embedded()
            code = 0
        except BaseException:
            try:
                get_logger(__name__).exception("worker_stop_failed", action="exit 1")
            except BaseException:
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)  # not through asyncio, whose clean-up would record the running jobs aborted

    previous = {sig: signal.signal(sig, now) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_on(sockets: list, app, **options) -> None:
    """uvicorn serving APP on SOCKETS (`listening`): in this process, or in --workers processes (APP an import string
    then). Ends as `uvicorn.run` does: exit code 3 when the app could not start."""
    import logging

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)",
                                            options["host"], options["port"])  # uvicorn says so only when it binds
    try:
        if config.workers > 1:
            # Its supervisor's handlers only queue the signal (polled every 0.5 s): nothing raised, nothing that a
            # finalizer could swallow, no `_redelivering_swallowed` needed. They stay installed once it returns, until
            # `stopping_cleanly` puts its own back. (Each server process is uvicorn's, its handlers only set a flag.)
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl+C, or SIGTERM (`stopping_cleanly`): before the app started, or as uvicorn's end
        return
    if config.workers == 1 and not server.started:
        raise SystemExit(3)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending Alembic migration (safe to run repeatedly)."""
    _settings()
    migrate()
    print("database is up to date")  # the result on stdout; log lines and errors on stderr


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run the job worker in-process."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (uvicorn workers)."),
) -> None:
    """Serve the API, the Jotform webhook and the admin panel (and, by default, the worker)."""
    import os

    from raiox.kit.logging import configure_logging

    settings = _settings()
    # the port is held from now on: nothing can take it before the server
    with stopping_cleanly(), listening(host, port) as sockets:
        configure_logging(settings.log_format, settings.log_level)  # before the embedded database logs its start
        embedder_ready(keep=workers == 1)
        if settings.embedded_database:
            migrate()  # embedded defaults: a fresh machine works with nothing configured
        database_ready()
        from raiox.app import create_app  # (its tasks register, and say so, once the database is there)

        options = {"host": host, "port": port, "log_config": None, "access_log": False}
        if workers == 1:
            serve_on(sockets, create_app(worker=worker), **options)
            return
        # Several processes: each builds its own app (and, unless --no-worker, its own job worker; jobs are
        # locked in PostgreSQL, so workers in several processes never run the same job twice).
        os.environ["RAIOX_SERVE_IN_PROCESS_WORKER"] = "1" if worker else "0"
        serve_on(sockets, "raiox.app:app_from_environment", factory=True, workers=workers, **options)


@app.command()
def worker(concurrency: int = typer.Option(2, min=1, max=64, help="Jobs processed at once.")) -> None:
    """Run the background job worker (image processing, reconciliation, delivery)."""
    from raiox.kit.logging import configure_logging, get_logger

    settings = _settings()
    with stopping_cleanly():  # SIGTERM or Ctrl+C while starting: the embedded PostgreSQL stopped, exit 0
        configure_logging(settings.log_format, settings.log_level)  # before the embedded database logs its start
        embedder_ready()
        if settings.embedded_database:
            migrate()  # embedded defaults, as `raiox serve`: a fresh data dir works with nothing configured
        database_ready()
        get_logger(__name__).info("worker_starting", concurrency=concurrency)  # its tasks register next
        from raiox.kit import jobs  # (its tasks register once the database is there)

        async def _run() -> None:
            async with jobs.app.open_async():
                await jobs.run_worker(concurrency=concurrency)

        with stopping_now():  # procrastinate's first: no more jobs fetched, the running ones finish
            asyncio.run(_run())


from raiox.review import cli as review_cli  # noqa: E402 - sub-apps register after the root app

app.add_typer(review_cli.users_app, name="users")

from raiox.review import audit_cli  # noqa: E402

app.add_typer(audit_cli.audit_app, name="audit")
app.command(name="admin")(review_cli.admin)


def one_line_listings(typer_app: typer.Typer) -> None:
    """A group's --help lists each command with its docstring's first paragraph, and Rich's markup mode keeps that
    paragraph's line breaks (the source wraps at 120 columns): rows cut mid-sentence, whatever the terminal's width.
    A command without a short help of its own gets that paragraph on one line, for the terminal to wrap."""
    import inspect

    for info in typer_app.registered_commands:
        if info.short_help is None:
            doc = info.help if info.help is not None else inspect.getdoc(info.callback)
            info.short_help = " ".join((doc or "").split("\n\n")[0].split()) or None
    for group in typer_app.registered_groups:
        one_line_listings(group.typer_instance)


one_line_listings(app)


def main() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(app())


if __name__ == "__main__":  # python -m raiox.cli
    main()
