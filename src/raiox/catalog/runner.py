"""Units of work for long catalog runs: one transaction per batch, so an interrupted run keeps every
finished batch and a re-run continues where it stopped (idempotent by sha256 and model id)."""

from collections.abc import Callable, Iterable
from itertools import islice

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from raiox.catalog import repository
from raiox.catalog.service import Importer, ImportReport, Reindexer
from raiox.kit.db import session_scope

Progress = Callable[[int], None]


def batched(items: Iterable, size: int):
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


async def run_import(
    maker: async_sessionmaker[AsyncSession], importer: Importer, items: list, batch_size: int = 16,
    progress: Progress | None = None,
) -> ImportReport:
    for batch in batched(items, batch_size):
        async with session_scope(maker) as session:
            await importer.import_batch(session, batch)
        if progress:
            progress(len(batch))
    return importer.report


def _filters(reindexer: Reindexer, force: bool) -> tuple[str | None, str | None]:
    """`repository.reference_page`'s filters: everything when forced, else what lacks the model's vector
    or (relocating) holds another localiser's box."""
    return (None, None) if force else (reindexer.embedder.model_id, reindexer.localiser)


async def reindex_total(maker: async_sessionmaker[AsyncSession], reindexer: Reindexer, force: bool) -> int:
    async with session_scope(maker) as session:
        return await repository.count_references(session, *_filters(reindexer, force))


async def run_reindex(
    maker: async_sessionmaker[AsyncSession], reindexer: Reindexer, *, force: bool = False, prune: bool = False,
    batch_size: int = 16, progress: Progress | None = None,
) -> ImportReport:
    model_id = reindexer.embedder.model_id
    async with session_scope(maker) as session:
        await reindexer.ensure_index(session)
    after = None
    while True:
        async with session_scope(maker) as session:
            page = await repository.reference_page(session, after, batch_size, *_filters(reindexer, force))
            if page:
                await reindexer.reindex_batch(session, page)
        if not page:
            break
        after = page[-1].id
        if progress:
            progress(len(page))
    if prune:
        async with session_scope(maker) as session:
            reindexer.report.pruned = await repository.delete_other_models(session, model_id)
    return reindexer.report
