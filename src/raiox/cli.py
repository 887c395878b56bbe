"""The `raiox` command line. Each domain contributes a Typer sub-app; long work shows Rich progress."""

import asyncio
import sys

import typer
from rich.console import Console

from raiox.kit.errors import ConfigError

app = typer.Typer(name="raiox", help="Raiox AI: identify dental implant systems from X-rays.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

from raiox.vision import cli as vision_cli  # noqa: E402

app.add_typer(vision_cli.app, name="vision")

from raiox.catalog import cli as catalog_cli  # noqa: E402

app.add_typer(catalog_cli.catalog_app, name="catalog")
app.add_typer(catalog_cli.tokens_app, name="tokens")
app.command("identify")(catalog_cli.identify)
console = Console(stderr=True)


def _settings():
    from raiox.kit.settings import get_settings

    try:
        return get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def migrate() -> None:
    """Upgrade the schema to the newest revision (idempotent, serialised by an advisory lock)."""
    from raiox.kit import migrate as migrations

    migrations.upgrade()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending Alembic migration (safe to run repeatedly)."""
    _settings()
    migrate()
    console.print("database is up to date")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run the job worker in-process."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (uvicorn workers)."),
) -> None:
    """Serve the API, the Jotform webhook and the admin panel (and, by default, the worker)."""
    import os

    import uvicorn

    from raiox.app import create_app

    settings = _settings()
    if settings.embedded_database:
        migrate()  # embedded defaults: a fresh machine works with nothing configured
    options = {"host": host, "port": port, "log_config": None, "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(worker=worker), **options)
        return
    # Several processes: each builds its own app (and, unless --no-worker, its own job worker; jobs are
    # locked in PostgreSQL, so workers in several processes never run the same job twice).
    os.environ["RAIOX_SERVE_IN_PROCESS_WORKER"] = "1" if worker else "0"
    uvicorn.run("raiox.app:app_from_environment", factory=True, workers=workers, **options)


@app.command()
def worker(concurrency: int = typer.Option(2, help="Jobs processed at once.")) -> None:
    """Run the background job worker (image processing, reconciliation, delivery)."""
    from raiox.kit import jobs
    from raiox.kit.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)

    async def _run() -> None:
        async with jobs.app.open_async():
            await jobs.run_worker(concurrency=concurrency)

    asyncio.run(_run())


from raiox.review import cli as review_cli  # noqa: E402 - sub-apps register after the root app

app.add_typer(review_cli.users_app, name="users")
app.command(name="admin")(review_cli.admin)


def main() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(app())


if __name__ == "__main__":  # python -m raiox.cli
    main()
