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


class _Audited:
    """Each batch's writes audited in the batch's own transaction (an interrupted run's committed batches are in the
    log, the rolled-back one is not): ACTION by ACTOR, with what the batch added, embedded or relocated (none: no
    entry) and the images it stored ("origin sha256:<12 hex>")."""

    def __init__(self, report: ImportReport, actor: str, action: str, model_id: str) -> None:
        self.report, self.actor, self.action, self.model_id = report, actor, action, model_id
        self.seen = self._counts()

    def _counts(self) -> tuple[int, int, int, int]:
        r = self.report
        return r.added, r.embedded, r.relocated, len(r.stored)

    async def record(self, session: AsyncSession) -> None:
        from raiox.review.service import audit

        now = self._counts()
        added, embedded, relocated = (a - b for a, b in zip(now[:3], self.seen[:3], strict=True))
        if added or embedded or relocated:
            await audit(session, self.actor, self.action, target=self.model_id, added=added, embedded=embedded,
                        relocated=relocated, images=self.report.stored[self.seen[3]:])
        self.seen = now


async def run_import(
    maker: async_sessionmaker[AsyncSession], importer: Importer, items: list, batch_size: int = 16,
    progress: Progress | None = None, *, actor: str = "cli:raiox catalog import",
) -> ImportReport:
    """Audited `catalog.import` per batch (``_Audited``) by ACTOR."""
    audited = _Audited(importer.report, actor, "catalog.import", importer.embedder.model_id)
    for batch in batched(items, batch_size):
        async with session_scope(maker) as session:
            await importer.import_batch(session, batch)
            await audited.record(session)
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
    batch_size: int = 16, progress: Progress | None = None, actor: str = "cli:raiox catalog reindex",
) -> ImportReport:
    """Audited `catalog.reindex` per batch (``_Audited``) and `catalog.prune` (the embeddings deleted) by ACTOR."""
    from raiox.review.service import audit

    model_id = reindexer.embedder.model_id
    audited = _Audited(reindexer.report, actor, "catalog.reindex", model_id)
    async with session_scope(maker) as session:
        await reindexer.ensure_index(session)
    after = None
    while True:
        async with session_scope(maker) as session:
            page = await repository.reference_page(session, after, batch_size, *_filters(reindexer, force))
            if page:
                await reindexer.reindex_batch(session, page)
                await audited.record(session)
        if not page:
            break
        after = page[-1].id
        if progress:
            progress(len(page))
    if prune:
        async with session_scope(maker) as session:
            reindexer.report.pruned = await repository.delete_other_models(session, model_id)
            if reindexer.report.pruned:
                await audit(session, actor, "catalog.prune", target=model_id, pruned=reindexer.report.pruned)
    return reindexer.report
