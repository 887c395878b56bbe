"""`raiox cases purge`: remove closed cases' films and personal data (data retention, raiox.cases.retention).
`raiox cases reread`: read the implants of cases awaiting review again with the current models (raiox.review.reread)."""

import uuid

import typer
from rich.console import Console

cases_app = typer.Typer(help="Cases: data retention, reading implants again after a model change.",
                        no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)  # a long reason stays one line, greppable


def _chosen(case: list[str] | None, selector: bool, named: str) -> list[uuid.UUID]:
    """The --case ids; exit 2 unless exactly one of them and the other selector (NAMED) was given."""
    if selector == bool(case):
        err.print(f"[red]give {named} or --case ID (not both)[/red]")
        raise typer.Exit(2)
    try:
        return [uuid.UUID(c) for c in case or []]
    except ValueError:
        err.print("[red]--case takes case ids (UUIDs)[/red]")
        raise typer.Exit(2) from None


@cases_app.command("purge")
def purge(
    older_than: int = typer.Option(None, "--older-than", min=1, max=36500, help="Every closed case last changed more "
                                   "than this many days ago (what the daily job does with RAIOX_RETENTION_DAYS)."),
    case: list[str] = typer.Option(None, "--case", help="This case (id), e.g. on the patient's request; repeatable."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be purged."),
) -> None:
    """Remove the films, implants and personal data of closed cases (delivered, or failed), keeping the case row
    (submission id, status, decision, dates) and its audit trail. Cannot be undone. Each case on its own: one that
    cannot be purged (unknown, not closed, already purged) is skipped with the reason on stderr, and the exit
    status is then 1."""
    from raiox.catalog.cli import _progress, run_db
    from raiox.cases import retention
    from raiox.kit.db import session_scope

    chosen = _chosen(case, older_than is not None, "--older-than DAYS")

    async def work(maker) -> tuple[int, int, int]:
        ids = chosen
        if older_than is not None:
            async with session_scope(maker) as session:
                ids = await retention.expired(session, older_than, limit=1_000_000)
        if dry_run:
            count = await _list(maker, ids)
            return count, 0, len(ids) - count
        done = objects = 0
        with _progress() as progress:
            task = progress.add_task("purging cases", total=len(ids))
            for case_id in ids:  # each case on its own, as the dry run lists them: one refused stops no other
                async with session_scope(maker) as session:
                    if (why := await _refusal(session, case_id)) is not None:
                        err.print(f"skip {case_id}: {why}")
                    else:
                        objects += await retention.purge(session, case_id, actor="cli:raiox cases purge")
                        done += 1
                progress.advance(task)
        return done, objects, len(ids) - done

    count, objects, skipped = run_db(work)
    print(f"would purge {count} case(s)" if dry_run else f"purged {count} case(s), {objects} stored object(s) deleted")
    if skipped:
        raise typer.Exit(1)


async def _refusal(session, case_id: uuid.UUID) -> str | None:
    """Why CASE_ID is not purged now (unknown, not closed, a delivery running, already purged); None: it is."""
    from raiox.cases import retention
    from raiox.cases.service import get_or_404
    from raiox.kit.errors import NotFound

    try:
        case = await get_or_404(session, case_id)
    except NotFound as exc:
        return exc.message
    return "already purged" if case.purged_at else await retention.refusal(session, case)


async def _list(maker, ids: list[uuid.UUID]) -> int:
    """Print the cases a purge would remove; say why for the others. How many would be purged."""
    from raiox.kit.db import session_scope

    count = 0
    async with session_scope(maker) as session:
        for case_id in ids:
            if why := await _refusal(session, case_id):
                err.print(f"skip {case_id}: {why}")
            else:
                print(case_id)
                count += 1
    return count


@cases_app.command("reread")
def reread(
    stale: bool = typer.Option(False, "--stale", help="Every case awaiting review with an implant read by another "
                               "embedder than the current one (run it after switching RAIOX_EMBEDDER)."),
    case: list[str] = typer.Option(None, "--case", help="This case (id); repeatable."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the cases that would be read again (each one "
                                 "checked as the real run would)."),
) -> None:
    """Read the implants of cases awaiting review again with the current models: each keeps its box, number and
    mark, is embedded, read and searched again, and the case's ranking is fused again (audited `case.reread`).
    Exit status 1 when a case was skipped (the reason is on stderr) or the catalog has no vectors of the current
    model (nothing is read then)."""
    from raiox.catalog.cli import _progress, run_db
    from raiox.kit.db import session_scope
    from raiox.review import reread, repository

    chosen = _chosen(case, stale, "--stale")

    async def work(maker) -> tuple[list[int], int]:
        ids = chosen
        if stale:
            async with session_scope(maker) as session:
                ids = await repository.stale_cases(session, await reread.current_model())
        done, skipped = [], 0
        with _progress() as progress:
            task = progress.add_task("reading cases again", total=len(ids))
            for case_id in ids:
                if (implants := await _reread_one(maker, case_id, dry_run)) is None:
                    skipped += 1
                else:
                    done.append(implants)
                progress.advance(task)
        return done, skipped

    try:
        done, skipped = run_db(work)
    except reread.CatalogMissing as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    verb = "would read" if dry_run else "read"
    print(f"{verb} {len(done)} case(s) again, {sum(done)} implant(s)" + (f"; {skipped} skipped" if skipped else ""))
    if skipped:
        raise typer.Exit(1)


async def _reread_one(maker, case_id: uuid.UUID, dry_run: bool) -> int | None:
    """How many implants of the case were (DRY_RUN: would be) read again, the case's id printed; None, with the
    reason on stderr, when it cannot be. `CatalogMissing` is raised: it stops every case alike."""
    from raiox.kit.db import session_scope
    from raiox.kit.errors import RaioxError
    from raiox.review import reread

    try:
        async with session_scope(maker) as session:
            found = await reread.films(session, case_id)
        if dry_run:
            implants = sum(len(film.fixtures) for film in found)
        else:
            readings = await reread.read(found)
            async with session_scope(maker) as session:
                implants = await reread.store(session, case_id, readings, actor="cli:raiox cases reread")
    except reread.CatalogMissing:
        raise
    except RaioxError as exc:
        err.print(f"skip {case_id}: {exc.message}")
        return None
    print(case_id)
    return implants
