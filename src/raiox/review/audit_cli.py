"""`raiox audit list`: the audit log for scripts and auditors, newest first, as tab-separated rows or JSON lines.

Each row is one line whatever its length (values' tabs and line breaks become spaces; details are compact JSON),
piped or not. The details are printed as recorded: entries never carry a secret (no password, no token; a token's
listed prefix only), and whoever runs this already reads the database."""

import json
from datetime import date

import typer
from rich.console import Console
from rich.markup import escape

audit_app = typer.Typer(help="The audit log (every write: who, what, when).", no_args_is_help=True)
err = Console(stderr=True)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        err.print(f"[red]--since {escape(value)}: not a day (YYYY-MM-DD)[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _cell(value: object) -> str:
    """VALUE on one line of one column: "-" when empty, its tabs and line breaks as spaces."""
    text = "-" if value is None or value == "" else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


LONG_LIST = 20  # a list detail longer than this (a catalog import's stored images) is a count in the rows


def _summary(details: dict) -> dict:
    """DETAILS as a row shows them: a list of more than LONG_LIST items as its count ("30 items"; of a list the entry
    holds cut, `kit.audit.capped`: "50 of 2496 items"); --json and --full keep everything the entry holds."""
    def short(key: str, value: object) -> object:
        if not isinstance(value, list) or len(value) <= LONG_LIST:
            return value
        total = details.get(f"{key}_count")
        return f"{len(value)} of {total} items" if isinstance(total, int) and total > len(value) else \
            f"{len(value)} items"

    return {key: short(key, value) for key, value in details.items()}


def _record(entry, protocol: str | None) -> dict:
    return {"id": entry.id, "created_at": entry.created_at.isoformat(), "actor": entry.actor, "action": entry.action,
            "case_id": str(entry.case_id) if entry.case_id else None, "protocol": protocol, "target": entry.target,
            "details": entry.details or {}}


@audit_app.command("list")
def audit_list(
    since: str = typer.Option(None, "--since", help="From this day on (YYYY-MM-DD, in RAIOX_ADMIN_TIMEZONE)."),
    action: str = typer.Option(None, "--action", help="One action exactly, e.g. token.create, case.approve."),
    actor: str = typer.Option(None, "--actor", help="Text in who did it (e-mail, token name, command)."),
    target: str = typer.Option(None, "--target", help="Text in what was acted on: case protocol, system, token, user."),
    limit: int = typer.Option(100, "--limit", min=1, max=1_000_000, help="At most this many entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of tab-separated rows."),
    full: bool = typer.Option(False, "--full", help="Rows with every detail the entry holds: a list of more than 20 "
                              "items (a catalog import's stored images) is otherwise shown as its count. --json is "
                              "always complete. An entry keeps the first 50 items of a longer list, with its length "
                              "(<name>_count) and how many it left out (<name>_left_out), and the first 5000 "
                              "characters of a longer text, with its length (<name>_chars)."),
) -> None:
    """Audit entries, newest first: created_at (UTC), actor, action, case protocol, target, details (JSON; a long
    list as its count unless --full), tab-separated; --json: one JSON object per line, complete."""
    from zoneinfo import ZoneInfo

    from raiox.catalog.cli import run_db
    from raiox.cli import _settings
    from raiox.kit.db import session_scope
    from raiox.review import repository

    settings = _settings()
    first = _day(since)

    async def rows(maker):
        async with session_scope(maker) as session:
            found, _ = await repository.audit_log(
                session, action=(action or "").strip() or None, actor=(actor or "").strip() or None,
                target=(target or "").strip() or None, date_from=first, zone=ZoneInfo(settings.admin_timezone),
                limit=limit, count=False)
            return [_record(entry, protocol) for entry, protocol in found]

    for record in run_db(rows):
        if as_json:
            print(json.dumps(record, ensure_ascii=False, default=str))
        else:
            shown = record["details"] if full else _summary(record["details"])
            details = json.dumps(shown, ensure_ascii=False, default=str)
            print("\t".join(_cell(v) for v in (record["created_at"], record["actor"], record["action"],
                                                record["protocol"], record["target"], details)))


@audit_app.command("anonymise-addresses")
def anonymise_addresses(
    older_than: int = typer.Option(None, "--older-than", min=1, max=36500, help="Entries older than this many days "
                                   "(default: RAIOX_AUDIT_ADDRESS_RETENTION_DAYS, what the daily job uses)."),
) -> None:
    """Replace the client address of refused sign-ins' audit entries (auth.login_failed, auth.lockout, actor
    ip:<address>) older than the period by "ip:anonymised" (LGPD minimisation; the daily `purge_expired_cases` job
    does it too); the entries stay. Audited `audit.anonymise_addresses` when something changed."""
    from raiox.cases.tasks import forget_addresses
    from raiox.catalog.cli import run_db
    from raiox.cli import _settings

    days = older_than or _settings().audit_address_retention_days
    if days <= 0:
        err.print("[red]RAIOX_AUDIT_ADDRESS_RETENTION_DAYS is 0 (keep): give --older-than DAYS[/red]")
        raise typer.Exit(2)
    changed = run_db(lambda maker: forget_addresses(days, "cli:raiox audit anonymise-addresses", maker))
    print(f"anonymised {changed} audit entr{'y' if changed == 1 else 'ies'} older than {days} day(s)")
