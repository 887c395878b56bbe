"""`raiox catalog import|reindex|status|demo|stats|references|remove-reference|scrub-references`,
`raiox identify IMAGE` and `raiox tokens create|list|revoke`."""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from raiox.kit.cli_output import LineProgress, add_row, stdout_console

if TYPE_CHECKING:  # (SQLAlchemy is imported by the commands that use the database, not for every --help)
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

catalog_app = typer.Typer(help="Implant catalog: import references, re-embed, demo catalog.", no_args_is_help=True)
tokens_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
err = Console(stderr=True)
T = TypeVar("T")
MAX_SKIPS_SHOWN = 50
NOT_READY = 3  # `raiox catalog status`: references lack the model's vectors, or its vector index is missing
EMBEDDER_HELP = "Embedding model spec (raiox-vN, onnx:PATH, open_clip:MODEL/TAG); default RAIOX_EMBEDDER."


def run_db(work: "Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]") -> T:
    """Run `work` with its own engine (no pool shared across event loops), then close it."""
    from raiox.cli import _settings
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.pool import NullPool

    from raiox.kit.db import sqlalchemy_url
    from raiox.kit.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)  # logs on stderr: stdout stays clean JSON
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    async def main() -> T:
        engine = create_async_engine(sqlalchemy_url(), poolclass=NullPool, hide_parameters=True)
        try:
            return await work(async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _progress() -> Progress | LineProgress:
    """Rich's bar in a terminal; elsewhere (a deploy's log, a pipe) a line every 15 s, which a log shows as it goes."""
    if not err.is_interactive:
        return LineProgress(err)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


def _embedder(spec: str | None = None):
    """The embedder SPEC names (`--embedder`), else the configured one; one that cannot be built (unknown name,
    missing or broken model file), or whose vectors the catalog cannot hold (not 512 finite numbers per crop), is a
    configuration error naming the option or RAIOX_EMBEDDER."""
    from raiox.kit.errors import ConfigError, first_line
    from raiox.kit.settings import get_settings
    from raiox.vision import get_embedder
    from raiox.vision.embedders import unfit_for_catalog

    where = "--embedder" if spec else "RAIOX_EMBEDDER"
    spec = spec or get_settings().embedder
    try:
        embedder = get_embedder(spec)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValueError (unknown name), OSError, ONNX Runtime's own errors
        raise ConfigError(f"{where}={spec!r} cannot be loaded: {first_line(exc)}") from exc
    if why := unfit_for_catalog(embedder):
        raise ConfigError(f"{where}={spec!r} cannot embed for the catalog: {why}")
    return embedder


def _print_skips(skips: list, title: str) -> None:
    if skips:
        err.print(f"[yellow]{title} {len(skips)}:[/yellow]")
        for skip in skips[:MAX_SKIPS_SHOWN]:
            err.print(f"  {escape(skip.origin)}: {escape(skip.reason)}", soft_wrap=True, highlight=False)
        if len(skips) > MAX_SKIPS_SHOWN:
            err.print(f"  ... and {len(skips) - MAX_SKIPS_SHOWN} more")


def _print_report(report, title: str) -> None:
    """The run's summary line (`import: 3 added, ...`) on stdout, the command's result, as other commands print
    theirs; what was skipped, as the progress before it, on stderr."""
    _print_skips(report.skipped, "skipped")
    _print_skips(report.kept, "stored box kept for")
    parts = [f"{report.added} added", f"{report.embedded} embedded (stored before)",
             f"{report.already} already embedded", f"{len(report.skipped)} skipped"]
    if report.relocated or report.kept:
        parts.append(f"{report.relocated} relocated")
    if report.pruned:
        parts.append(f"{report.pruned} old embeddings pruned")
    print(f"{title}: " + ", ".join(parts), flush=True)


def _import(items: list, *, batch_size: int, whole_image: bool, label: str, actor: str):
    from raiox.catalog.runner import run_import
    from raiox.catalog.service import Importer
    from raiox.kit.storage import get_storage

    embedder = _embedder()
    importer = Importer(get_storage(), embedder, whole_image=whole_image)
    with _progress() as progress:
        task = progress.add_task(f"{label} ({embedder.model_id})", total=len(items))
        report = run_db(lambda maker: run_import(
            maker, importer, items, batch_size, lambda n: progress.advance(task, n), actor=actor))
    return report


@catalog_app.command("import")
def import_(
    path: Path = typer.Argument(..., help="Folder MANUFACTURER/SYSTEM/*.{png,jpg,dcm,...} or a CSV manifest."),
    batch_size: int = typer.Option(16, min=1, max=512, help="Images embedded and committed together."),
    whole_image: bool = typer.Option(False, help="Embed the whole image when no fixture is found (else skip it)."),
) -> None:
    """Import reference images (resumable, idempotent: images already embedded are skipped)."""
    from raiox.catalog.sources import from_path

    try:
        items = list(from_path(path))
    except (ValueError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    report = _import(items, batch_size=batch_size, whole_image=whole_image, label="importing",
                     actor="cli:raiox catalog import")
    _print_report(report, "import")


@catalog_app.command("reindex")
def reindex(
    force: bool = typer.Option(False, help="Re-embed images already embedded with the current model too."),
    prune: bool = typer.Option(False, help="Afterwards, delete embeddings of every other model."),
    relocate: bool = typer.Option(False, help=(
        "Locate again the fixture of every reference whose box another localiser placed (after an upgrade "
        "that ships a new one), store the new box and re-embed it. Case references keep their reviewed box.")),
    batch_size: int = typer.Option(16, min=1, max=512),
    embedder_spec: str | None = typer.Option(None, "--embedder", help=EMBEDDER_HELP),
) -> None:
    """Embed every reference image that lacks a vector of the current model (RAIOX_EMBEDDER, or --embedder), from
    its stored fixture box; creates the model's vector index. Exit status 1 when the catalog holds reference images
    and, afterwards, none has a vector of the model (every one was skipped: object storage unreadable?)."""
    from raiox.catalog import repository
    from raiox.catalog.runner import reindex_total, run_reindex
    from raiox.catalog.service import Reindexer
    from raiox.kit.db import session_scope
    from raiox.kit.storage import get_storage

    embedder = _embedder(embedder_spec)
    reindexer = Reindexer(get_storage(), embedder, relocate=relocate)

    async def work(maker):
        total = await reindex_total(maker, reindexer, force)
        with _progress() as progress:
            task = progress.add_task(f"reindexing ({embedder.model_id})", total=total)
            report = await run_reindex(maker, reindexer, force=force, prune=prune, batch_size=batch_size,
                                       progress=lambda n: progress.advance(task, n))
        async with session_scope(maker) as session:
            return report, await repository.embedding_coverage(session, embedder.model_id)

    report, coverage = run_db(work)
    _print_report(report, "reindex")
    if coverage["references"] and not coverage["embedded"]:
        err.print(f"[red]no reference image of the catalog ({coverage['references']}) has a vector of "
                  f"{escape(embedder.model_id)}: every one was skipped (above); check the object storage settings "
                  "(RAIOX_STORAGE_URL, RAIOX_S3_*)[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(1)
    if coverage["missing"]:
        err.print(f"[yellow]{coverage['missing']} of {coverage['references']} reference images still lack a vector "
                  f"of {escape(embedder.model_id)} (skipped above): a rerun tries them again; `raiox catalog "
                  "remove-reference` removes one that cannot be read[/yellow]", soft_wrap=True, highlight=False)


@catalog_app.command("status")
def status(embedder_spec: str | None = typer.Option(None, "--embedder", help=EMBEDDER_HELP)) -> None:
    """Whether the catalog is ready for the current model (RAIOX_EMBEDDER, or --embedder): every reference image
    has a vector of it and its vector index exists. Prints the counts as JSON; exit status 0 ready, 3 not ready
    (`raiox catalog reindex` makes it ready; the deploy runs it then), 1 or 2 when it cannot tell."""
    from raiox.catalog import repository
    from raiox.kit.db import session_scope

    embedder = _embedder(embedder_spec)

    async def work(maker):
        async with session_scope(maker) as session:
            return await repository.embedding_coverage(session, embedder.model_id)

    coverage = run_db(work)
    ready = not coverage["missing"] and coverage["vector_index"]
    print(json.dumps({"model_id": embedder.model_id, **coverage, "ready": ready}), flush=True)
    model = escape(embedder.model_id)
    if ready:
        err.print(f"catalog ready for {model}: {coverage['references']} reference images, each with its vector",
                  soft_wrap=True, highlight=False)
        return
    why = []
    if coverage["missing"]:
        why.append(f"{coverage['missing']} of {coverage['references']} reference images lack its vector")
    if not coverage["vector_index"]:
        why.append("its vector index is missing")
    err.print(f"catalog not ready for {model}: {' and '.join(why)}; run `raiox catalog reindex`",
              soft_wrap=True, highlight=False)
    raise typer.Exit(NOT_READY)


def _demo_systems(limit: int | None, systems: str | None) -> list:
    """The demo systems to load: all, the first LIMIT, or the --systems ids (in their order, each once). A --systems
    that names no system (empty, blanks and commas: an unset shell variable) or an unknown id is refused, exit 2,
    before anything is loaded: it never falls back to the whole catalog."""
    from raiox.synth import demo_catalog

    catalog = demo_catalog()
    if systems is not None:
        wanted = list(dict.fromkeys(s.strip() for s in systems.split(",") if s.strip()))
        by_id = {demo.id: demo for demo in catalog}
        known = f"{catalog[0].id} to {catalog[-1].id}" if catalog else "none"
        if not wanted:
            err.print(f"[red]--systems names no demo system: give comma-separated ids ({known})[/red]",
                      soft_wrap=True, highlight=False)
            raise typer.Exit(2)
        unknown = [s for s in wanted if s not in by_id]
        if unknown:
            err.print(f"[red]unknown demo system id(s): {escape(', '.join(unknown))} (known: {known})[/red]",
                      soft_wrap=True, highlight=False)
            raise typer.Exit(2)
        catalog = [by_id[s] for s in wanted]
    return catalog[:limit] if limit else catalog


DEMO_ACTOR = "cli:raiox catalog demo"


async def _demo_state(maker) -> tuple[int, int, bool | None]:
    """The catalog's systems, its demo references, and whether the last `raiox catalog demo` run that stored
    something ended (its audit entry `complete`; None: no such run)."""
    from raiox.catalog import repository
    from raiox.kit.db import session_scope
    from raiox.review.repository import audit_log

    async with session_scope(maker) as session:
        last, _ = await audit_log(session, action="catalog.import", actor=DEMO_ACTOR, limit=1, count=False)
        complete = bool((last[0][0].details or {}).get("complete")) if last else None
        return (await repository.count_systems(session), await repository.count_references_from(session, "demo"),
                complete)


def _demo_cut_short(systems: int, stored: int, complete: bool | None, planned: int) -> bool:
    """A demo load interrupted (Ctrl+C on the first `make run`) and not finished since: `--if-empty` finishes it
    instead of serving a partial catalog for good (the import skips what is stored). A demo run that ended, or
    references an operator removed since, are left as they are."""
    if complete is not False or stored >= planned:
        return False
    err.print(f"the demo catalog load was cut short ({systems} systems, {stored} of {planned} references): "
              "finishing it", soft_wrap=True, highlight=False)
    return True


@catalog_app.command("demo")
def demo(
    if_empty: bool = typer.Option(False, "--if-empty", help="Load only when the catalog has no system (or finish a "
                                  "demo load that was cut short)."),
    export_specs: Path | None = typer.Option(None, help="Write the demo systems' specs (JSON) to this file."),
    refs: int | None = typer.Option(None, min=1, max=20, help="Bare-fixture reference renders per system: reference k "
                                    "(seed k) at the line's k-th size (default: one per size of the "
                                    "line, at least 6)."),
    restored: int | None = typer.Option(None, min=0, max=20, help="Sizes of each line (the first ones) also stored "
                                        "with a cover screw, healing cap, abutment and crown on the fixture: 4 "
                                        "references each (default 2; 0: bare fixtures only)."),
    limit: int | None = typer.Option(None, min=1, help="Only the first N demo systems."),
    systems: str | None = typer.Option(None, help="Only these demo system ids (comma-separated; at least one)."),
    batch_size: int = typer.Option(16, min=1, max=512),
) -> None:
    """Load the synthetic demo catalog (raiox.synth): renders stored as PNG, embedded."""
    from raiox.catalog.sources import from_demo

    chosen = _demo_systems(limit, systems)
    if export_specs is not None:
        specs = [{"id": d.id, "manufacturer": d.manufacturer, "name": d.name, "spec": d.spec} for d in chosen]
        export_specs.write_text(json.dumps(specs, indent=2, ensure_ascii=False) + "\n")
        err.print(f"wrote {len(specs)} specs to {export_specs}")

    items = list(from_demo(chosen, refs, restored))
    if if_empty and (existing := run_db(_demo_state))[0] and not _demo_cut_short(*existing, len(items)):
        print(f"catalog already has {existing[0]} systems: demo not loaded", flush=True)  # its result, on stdout
        return
    _print_report(_import(items, batch_size=batch_size, whole_image=True, label="demo catalog",
                          actor=DEMO_ACTOR), "demo")


@catalog_app.command("stats")
def stats() -> None:
    """Systems, reference images, embeddings per model and reference boxes per localiser."""
    from raiox.catalog import repository
    from raiox.kit.db import session_scope

    async def work(maker):
        async with session_scope(maker) as session:
            return {**await repository.catalog_size(session), **await repository.box_localisers(session)}

    print(json.dumps(run_db(work), indent=2))


@catalog_app.command("references")
def references(system_id: str = typer.Argument(..., help="The system's id (as in `raiox catalog demo`, the panel's "
                                                           "address /admin/catalog/ID).")) -> None:
    """A system's reference images: id, source, origin, content hash, size, date (ids for `remove-reference`)."""
    from raiox.kit.db import session_scope
    from raiox.models import ImplantSystem
    from raiox.review import repository

    async def work(maker):
        async with session_scope(maker) as session:
            if await session.get(ImplantSystem, system_id) is None:
                return None
            return await repository.references_of(session, system_id)

    refs = run_db(work)
    if refs is None:
        err.print(f"[red]no system {escape(system_id)!r} in the catalog[/red]")
        raise typer.Exit(1)
    table = Table(title=Text(f"{system_id}: {len(refs)} reference image(s)"))
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy into `remove-reference`
    for column in ("source", "origin", "sha256", "size", "added"):
        table.add_column(column, overflow="fold")
    for r in refs:
        add_row(table, r.id, r.source, r.origin or "-", r.sha256[:12], f"{r.width}x{r.height}" if r.width else "-",
                _when(r.created_at))
    stdout_console().print(table)


@catalog_app.command("remove-reference")
def remove_reference(
    system_id: str = typer.Argument(..., help="The system the images are references of."),
    reference_ids: list[str] = typer.Argument(..., help="Reference image ids (`raiox catalog references ID`)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove reference images from the catalog (a wrong system, a bad film), as the panel's "Remover do catálogo":
    rows and vectors go, the stored object too unless a case or another reference uses it; audited
    `catalog.reference_remove`. Exit status 1 when an id is unknown (nothing is removed then)."""
    import uuid

    from raiox.kit.db import session_scope
    from raiox.kit.errors import NotFound
    from raiox.review import repository, service

    try:
        ids = list(dict.fromkeys(uuid.UUID(value) for value in reference_ids))  # an id given twice is removed once
    except ValueError as exc:
        err.print(f"[red]not a reference id: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if not yes and not typer.confirm(f"Remove {len(ids)} reference image(s) of {system_id} from the catalog?"):
        raise typer.Exit(1)

    async def work(maker) -> None:
        async with session_scope(maker) as session:  # every id checked before anything is removed
            missing = [i for i in ids if await repository.system_reference(session, system_id, i) is None]
        if missing:
            raise NotFound(f"system {system_id} has no reference image {', '.join(map(str, missing))}")
        for ref_id in ids:  # one transaction each: its stored object is deleted just before its commit
            async with session_scope(maker) as session:
                details = await service.remove_reference(session, system_id, ref_id,
                                                         actor="cli:raiox catalog remove-reference")
            kept = "" if details["object_deleted"] else " (stored image kept: still used elsewhere)"
            print(f"removed {ref_id} ({details['source']}: {details['origin']}){kept}", flush=True)

    try:
        run_db(work)
    except NotFound as exc:
        err.print(f"[red]{escape(exc.message)}; nothing was removed[/red]")
        raise typer.Exit(1) from None


@catalog_app.command("scrub-references")
def scrub_references(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only read and check: say what a run would do, change "
                                 "nothing."),
) -> None:
    """Replace the stored object of every reference stored before metadata stripping (the file itself, with its
    DICOM patient or EXIF data) by its metadata-free copy, the same pixels (box and vectors kept), then delete the
    old object unless a case or another reference uses it; audited `catalog.reference_scrub`. Resumable: a rerun
    continues, one after a finished run finds nothing to do. Exit status 1 when a reference failed (listed with the
    reason) or object storage became unavailable."""
    from raiox.catalog.scrub import Scrubber
    from raiox.kit.storage import get_storage

    async def work(maker):
        scrubber = Scrubber(maker, get_storage(), dry_run=dry_run)
        total = await scrubber.total()
        with _progress() as progress:
            task = progress.add_task("checking references" if dry_run else "scrubbing references", total=total)
            return await scrubber.run(lambda n: progress.advance(task, n))

    report = run_db(work)
    _print_skips(report.failed, "failed")
    if dry_run:
        parts = [f"would scrub {report.scrubbed}", f"{report.clean} already clean", f"{len(report.failed)} failed"]
        if report.pending:
            parts.append(f"{report.pending} replaced objects to delete")
    else:
        parts = [f"{report.scrubbed} scrubbed", f"{report.clean} already clean", f"{len(report.failed)} failed",
                 f"{report.deleted} replaced objects deleted"]
        if report.kept:
            parts.append(f"{report.kept} kept (a case or another reference uses them)")
    print("scrub-references: " + ", ".join(parts), flush=True)
    if report.stopped:
        err.print(f"[red]stopped: object storage unavailable ({escape(report.stopped)}); check RAIOX_STORAGE_URL, "
                  "RAIOX_S3_* and run again: it continues where it stopped[/red]", soft_wrap=True, highlight=False)
    if report.failed:
        raise typer.Exit(1)


def identify(
    image: Path = typer.Argument(..., exists=True, dir_okay=False,
                                 help="Radiograph (PNG, JPEG, TIFF, BMP, WEBP, DICOM)."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, max=50,
                                     help="Candidates per implant (default RAIOX_TOP_K)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    box: list[str] = typer.Option([], "--box", help="A manual box instead of the localiser: 'x0,y0,x1,y1' in the "
                                  "image's pixels (repeat for several implants)."),
) -> None:
    """Identify the implant systems in an image (nothing is stored)."""
    from raiox.catalog.identify import identify as run_identify
    from raiox.catalog.identify import parse_boxes
    from raiox.cli import _settings
    from raiox.kit.db import session_scope
    from raiox.kit.errors import Unprocessable

    k = top_k or _settings().top_k
    try:
        boxes = parse_boxes(json.dumps([[float(v) for v in b.split(",")] for b in box])) if box else None
    except (ValueError, Unprocessable) as exc:
        detail = f" ({exc.message})" if isinstance(exc, Unprocessable) else ""
        raise typer.BadParameter(f"--box takes four numbers x0,y0,x1,y1{detail}") from None
    embedder = _embedder()

    async def work(maker):
        from raiox.catalog.repository import has_embeddings

        async with session_scope(maker) as session:
            result = await run_identify(session, image.read_bytes(), image.name, k, embedder=embedder, boxes=boxes)
            anything, ours = await has_embeddings(session, embedder.model_id)
            if not ours:  # every search came back empty: say why instead of an empty table
                err.print(f"[red]the catalog has no vectors of {embedder.model_id}: "
                          + ("run `raiox catalog reindex` with this model" if anything else
                             "load it first (`raiox catalog demo` or `raiox catalog import`)") + "[/red]",
                          soft_wrap=True)
                raise typer.Exit(1)
            return result

    try:
        result = run_db(work)
    except Unprocessable as exc:  # not a usable image (the rest: the command's error handling, raiox.cli)
        err.print(f"[red]{escape(str(image))}: {escape(exc.message)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result.model_dump(include={"implants"})))
        return
    _print_identification(result)


def _print_identification(result) -> None:
    out = stdout_console()
    if not result.implants:
        out.print("no implant found in the image")
    for number, implant in enumerate(result.implants, start=1):
        table = Table(title=f"Implant {number} (confidence {implant.confidence:.2f})")
        for column in ("#", "system", "manufacturer", "name", "score"):
            table.add_column(column, justify="right" if column in ("#", "score") else "left")
        for rank, c in enumerate(implant.candidates, start=1):
            add_row(table, rank, c.system, c.manufacturer, c.name, f"{c.score:.3f}")
        out.print(table)
        for rank, c in enumerate(implant.candidates, start=1):
            if c.differs_from_first is not None:
                what = ", ".join(f"{d.field} {d.value} (#1: {d.first})" for d in c.differs_from_first)
                out.print(f"#{rank} differs from #1 in: {what}" if what else f"#{rank}: the same design as #1",
                          markup=False, highlight=False)
        if implant.connection:
            kind, p = max(implant.connection.items(), key=lambda item: item[1])
            out.print(f"connection read {kind} ({p:.0%})", markup=False, highlight=False)
        if implant.features:
            likely = (max(values.items(), key=lambda item: item[1]) for values in implant.features.values())
            out.print("features read " + ", ".join(f"{name} {value} ({p:.0%})"
                                                  for name, (value, p) in zip(implant.features, likely)),
                      markup=False, highlight=False)
        if implant.thread_turns:
            out.print(f"threads counted: length = {implant.thread_turns:.1f} x pitch", highlight=False)


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Argument(..., help="Who or what uses the token (e.g. admin-panel, ci)."),
    scope: list[str] = typer.Option(None, "--scope", help="What it may do (repeat): identify (POST /identify, "
                                    "GET /implants), cases (read cases, retry), review (decide, mark implants, "
                                    "read them again), "
                                    "catalog (approve's add_to_catalog), metrics (GET /metrics), "
                                    "or all (the default)."),
) -> None:
    """Create a token; it is shown once, alone on the last line (only its hash is stored). Give it only the scopes
    it needs: `--scope identify` for an integration that only identifies films."""
    from raiox.kit.db import session_scope
    from raiox.kit.tokens import create_token, token_name, token_scopes
    from raiox.kit.errors import BadRequest

    try:
        name, scopes = token_name(name), token_scopes(scope)
    except BadRequest as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None

    async def work(maker) -> str:
        from raiox.kit.audit import audit

        async with session_scope(maker) as session:
            token = await create_token(session, name, scopes)
            await audit(session, "cli:raiox tokens create", "token.create", target=name, scopes=scopes,
                        prefix=token[:10])
            return token

    try:
        token = run_db(work)
    except BadRequest as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    print(f"created token {name!r} with scopes {', '.join(scopes)} (shown once; store it now):", flush=True)
    print(token, flush=True)


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (name, prefix, scopes, dates); never the tokens themselves."""
    from raiox.kit.db import session_scope
    from raiox.kit.tokens import list_tokens

    async def work(maker):
        async with session_scope(maker) as session:
            return await list_tokens(session)

    table = Table()
    for column in ("name", "prefix", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for t in run_db(work):
        add_row(table, t.name, t.prefix, ", ".join(t.scopes or []), _when(t.created_at), _when(t.last_used_at),
                _when(t.revoked_at))
    stdout_console().print(table)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@tokens_app.command("revoke")
def tokens_revoke(name_or_prefix: str = typer.Argument(..., help="Token name, or its prefix as listed.")) -> None:
    """Revoke live tokens by name or prefix (surrounding blanks ignored: a pasted prefix with its newline works)."""
    from raiox.kit.db import session_scope
    from raiox.kit.tokens import revoke_token

    name_or_prefix = name_or_prefix.strip()
    if not name_or_prefix:
        err.print("[red]a token name or prefix cannot be blank[/red]")
        raise typer.Exit(2)

    async def work(maker) -> int:
        from raiox.kit.audit import audit

        async with session_scope(maker) as session:
            revoked = await revoke_token(session, name_or_prefix)
            if revoked:
                await audit(session, "cli:raiox tokens revoke", "token.revoke", target=name_or_prefix,
                            revoked=revoked)
            return revoked

    revoked = run_db(work)
    if not revoked:
        err.print(f"[red]no live token named or prefixed {name_or_prefix!r}[/red]")
        raise typer.Exit(1)
    print(f"revoked {revoked} token(s)")
