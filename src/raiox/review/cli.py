"""`raiox users add EMAIL --role reviewer|admin`, `raiox users disable EMAIL`, `raiox users list` and `raiox admin`
(the panel alone, on its own host)."""

import asyncio
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

users_app = typer.Typer(help="Admin panel users.", no_args_is_help=True)
console = Console(stderr=True)
MIN_PASSWORD = 10
EMAIL_MAX = 320  # users.email


def _refuse(message: str) -> NoReturn:
    """One line on stderr, exit status 2 (a usage error), nothing stored."""
    console.print(f"[red]{escape(message)}[/red]", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


async def _add(email: str, role: str, password: str) -> str:
    """Audited `user.add` (never the password): created, or the role and whether the account was disabled before."""
    from raiox.kit.db import session_scope
    from raiox.models import User
    from raiox.review import repository
    from raiox.review.accounts import hash_password
    from raiox.kit.audit import audit

    async with session_scope() as session:
        user = await repository.user_by_email(session, email)
        if user is None:
            session.add(User(email=email, password_hash=hash_password(password), role=role))
            await audit(session, "cli:raiox users add", "user.add", target=email, outcome="created", role=role)
            return "created"
        before = {"role": user.role, "active": user.active}
        user.password_hash, user.role, user.active = hash_password(password), role, True
        user.failed_logins, user.locked_until = 0, None
        await repository.clear_source(session, user.id)  # every source's lock too
        await audit(session, "cli:raiox users add", "user.add", target=email, outcome="updated", role=role,
                    role_before=before["role"], active_before=before["active"], password_reset=True)
        return "updated"


@users_app.command("add")
def add(
    email: str = typer.Argument(..., help="Login e-mail."),
    role: str = typer.Option("reviewer", help="reviewer | admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create a panel user (or reset an existing one's password and role). Refused (exit 2, nothing stored): an
    EMAIL that is not an address (name@domain.tld), a password shorter than 10 characters or one that starts or
    ends with a blank (a paste accident: the panel's login would not match what the user types)."""
    from raiox.cli import _settings
    from raiox.intake.parse import EMAIL
    from raiox.review.accounts import ROLES

    email = email.strip().lower()
    if role not in ROLES:
        _refuse(f"--role must be one of: {', '.join(ROLES)}")
    if not EMAIL.match(email) or len(email) > EMAIL_MAX:
        _refuse(f"EMAIL must be an e-mail address such as name@example.com (at most {EMAIL_MAX} characters), "
                f"not {email[:80]!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if password != password.strip():
        _refuse("the password starts or ends with a blank (space, tab or line break): probably a paste accident; "
                "give it without them")
    if len(password) < MIN_PASSWORD:
        _refuse(f"the password needs at least {MIN_PASSWORD} characters")
    _settings()
    outcome = asyncio.run(_add(email, role, password))
    print(f"user {email} ({role}) {outcome}")  # the result on stdout; refusals and errors on stderr


async def _disable(email: str) -> bool:
    from raiox.kit.db import session_scope
    from raiox.review import repository
    from raiox.kit.audit import audit

    async with session_scope() as session:
        user = await repository.user_by_email(session, email)
        if user is None:
            return False
        user.active = False
        await repository.end_sessions(session, user.id)
        await audit(session, "cli:raiox users disable", "user.disable", target=email)
        return True


@users_app.command("disable")
def disable(email: str = typer.Argument(..., help="Login e-mail.")) -> None:
    """Disable a panel user and end their sessions at once (`raiox users add` enables them again, with a new
    password)."""
    from raiox.cli import _settings

    _settings()
    email = email.strip().lower()
    if not asyncio.run(_disable(email)):
        console.print(f"[red]no panel user {email}[/red]")
        raise typer.Exit(1)
    print(f"user {email} disabled; their sessions ended")


@users_app.command("list")
def list_users() -> None:
    """Panel users: e-mail, role, state."""
    from raiox.cli import _settings
    from raiox.kit.db import session_scope
    from raiox.review import repository

    _settings()

    async def rows():
        async with session_scope() as session:
            return [(u.email, u.role, u.active, u.locked_until) for u in await repository.users(session)]

    for email, role, active, locked in asyncio.run(rows()):
        state = "active" if active else "disabled"
        print(f"{email}\t{role}\t{state}{'' if locked is None else f' (locked until {locked:%Y-%m-%d %H:%M} UTC)'}")


def admin(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8001, min=1, max=65535, help="TCP port."),
) -> None:
    """Serve the admin panel alone (/admin), against the same database; workers run the deliveries."""
    from raiox.cli import _settings, database_ready, embedder_ready, listening, migrate, serve_on, stopping_cleanly
    from raiox.kit.logging import configure_logging
    from raiox.review.panel import create_admin_app

    settings = _settings()
    with stopping_cleanly(), listening(host, port) as sockets:  # the port held from now on: nothing can take it
        configure_logging(settings.log_format, settings.log_level)  # before the database's first log line
        embedder_ready()  # catalog uploads and manual marks embed and read in this process
        if settings.embedded_database:
            migrate()
        database_ready()
        serve_on(sockets, create_admin_app(), host=host, port=port, log_config=None, access_log=False,
                 proxy_headers=True)
