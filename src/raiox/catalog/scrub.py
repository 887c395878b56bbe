"""`raiox catalog scrub-references`: references stored before commit 710be27 hold the file itself in object storage,
with whatever metadata it carried (a DICOM's patient, study and device attributes; a photo's EXIF GPS position, camera
serial, author). Each such reference gets what newer ones store, `raiox.vision.metadata_free`'s copy, and the file
is deleted.

Which references have work is known from the database (`reference_images.metadata_free`, migration 0018; every store
since sets it): one flagged false is read; a stored object that is already its own metadata-free copy (byte for byte)
is only flagged. Otherwise the copy is checked to read back as exactly the pixels the stored object gives (so the
reference keeps its box and vectors: a reindex of the copy gives the same ones; one whose pixels would differ is
left as it is and reported), stored content-addressed and read back, and only then the reference is pointed at it
(its `sha256` stays the file's, what a re-import recognises), audited `catalog.reference_scrub`, and committed. The
replaced object is recorded on the row (`replaced_key`) in that same commit and deleted after it, unless a case or
another reference still uses it, in a transaction of its own that clears `replaced_key`: a run interrupted or failing
anywhere leaves each reference pointing at an object that was read back whole, and a rerun picks up what is left
(the same copy, stored under the same key; a pending deletion). A second run finds nothing to do.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from raiox.catalog import repository
from raiox.catalog.sources import Skip
from raiox.kit.db import session_scope
from raiox.kit.errors import NotFound, RaioxError, ServiceUnavailable
from raiox.kit.logging import get_logger
from raiox.kit.storage import Storage, content_key

log = get_logger(__name__)
ACTOR = "cli:raiox catalog scrub-references"
PAGE = 50  # references read from the database at once (each then read, copied and committed on its own)
CHANGED = "changed while being scrubbed (removed, or scrubbed by another run): run again"
PIXELS_DIFFER = "its metadata-free copy would not read back as the same pixels: left as it is"


@dataclass
class ScrubReport:
    scrubbed: int = 0  # pointed at a metadata-free copy (dry run: would be)
    clean: int = 0  # the stored object already was one
    deleted: int = 0  # replaced objects deleted
    kept: int = 0  # replaced objects kept: a case or another reference still uses them
    pending: int = 0  # dry run: replaced objects still to delete, from an interrupted run
    failed: list[Skip] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped before the end (object storage unavailable)

    def fail(self, ref, reason: str) -> None:
        self.failed.append(Skip(f"{ref.id} ({ref.origin or ref.storage_key})", reason))


class ScrubFailed(Exception):
    """A reference that cannot be scrubbed, and why (the run goes on)."""


@dataclass
class Copy:
    data: bytes
    content_type: str
    key: str


def metadata_free_copy(data: bytes, filename: str | None) -> Copy | None:
    """DATA's metadata-free copy, checked to decode into exactly DATA's pixels (ScrubFailed otherwise); None when
    DATA is that copy already."""
    from raiox.catalog.service import decode
    from raiox.kit.settings import get_settings
    from raiox.vision import metadata_free

    clean, content_type = metadata_free(data, filename, max_pixels=get_settings().max_pixels)
    if clean == data:
        return None
    if not np.array_equal(decode(clean, filename), decode(data, filename)):
        raise ScrubFailed(PIXELS_DIFFER)
    return Copy(clean, content_type, content_key(clean)[0])


async def repoint(session: AsyncSession, ref_id: uuid.UUID, old_key: str, copy: Copy | None, *, actor: str) -> None:
    """Point the reference (still stored under OLD_KEY, not flagged: ScrubFailed otherwise) at COPY, the object it
    replaces to be deleted after the commit (`retire`), audited; COPY None: its object is metadata-free as it is."""
    from raiox.review.service import audit

    ref = await repository.reference_for_update(session, ref_id)
    if ref is None or ref.storage_key != old_key or ref.metadata_free:
        raise ScrubFailed(CHANGED)
    if copy is None:
        await repository.set_stored_object(session, ref_id, storage_key=old_key, replaced_key=None)
        return
    await repository.set_stored_object(session, ref_id, storage_key=copy.key, replaced_key=old_key)
    await audit(session, actor, "catalog.reference_scrub", target=ref.system_id, reference_id=str(ref.id),
                origin=ref.origin, source=ref.source, sha256=ref.sha256, replaced_key=old_key, storage_key=copy.key,
                content_type=copy.content_type)


async def retire(session: AsyncSession, storage: Storage, ref_id: uuid.UUID) -> bool | None:
    """Delete the object the reference's scrub replaced, unless a case or another reference uses it, and forget it
    (deleted before the caller commits: an outage leaves it recorded, for the next run). True: deleted; False: kept;
    None: nothing was pending."""
    from raiox.cases.repository import keys_in_use

    ref = await repository.reference_for_update(session, ref_id)
    if ref is None or ref.replaced_key is None:
        return None
    key = ref.replaced_key
    kept = bool(await keys_in_use(session, {key}))
    ref.replaced_key = None
    await session.flush()
    if not kept:
        await storage.delete(key)
    log.info("reference_scrubbed", reference_id=str(ref_id), system_id=ref.system_id, replaced_object_deleted=not kept)
    return not kept


class Scrubber:
    """One run over every reference with work left (`repository.unscrubbed_page`), each in its own transactions.
    A storage outage stops the run (ServiceUnavailable, reported as the reference's failure and `stopped`)."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], storage: Storage, *, dry_run: bool = False,
                 actor: str = ACTOR) -> None:
        self.maker, self.storage, self.dry_run, self.actor = maker, storage, dry_run, actor
        self.report = ScrubReport()

    async def total(self) -> int:
        async with session_scope(self.maker) as session:
            return await repository.count_unscrubbed(session)

    async def run(self, progress: Callable[[int], None] | None = None) -> ScrubReport:
        after = None
        while True:
            async with session_scope(self.maker) as session:
                page = await repository.unscrubbed_page(session, after, PAGE)
            for ref in page:
                try:
                    await self._one(ref)
                except ScrubFailed as exc:
                    self.report.fail(ref, str(exc))
                except ServiceUnavailable as exc:
                    self.report.fail(ref, exc.message)
                    self.report.stopped = exc.message
                    return self.report
                if progress:
                    progress(1)
            if len(page) < PAGE:
                return self.report
            after = page[-1].id

    async def _one(self, ref) -> None:
        if not ref.metadata_free:
            await self._scrub(ref)
        elif self.dry_run:
            self.report.pending += 1
        else:
            await self._retire(ref)

    async def _scrub(self, ref) -> None:
        try:
            data = await self.storage.get(ref.storage_key)
        except NotFound:
            raise ScrubFailed(f"stored object {ref.storage_key} is missing: `raiox catalog remove-reference` "
                              "removes the reference") from None
        try:
            copy = await asyncio.to_thread(metadata_free_copy, data, ref.origin)
        except (RaioxError, ValueError, OSError) as exc:
            raise ScrubFailed(f"not a usable image: {getattr(exc, 'message', None) or exc}") from None
        if copy is not None and not self.dry_run:
            await self._store(copy)
        if not self.dry_run:
            async with session_scope(self.maker) as session:
                await repoint(session, ref.id, ref.storage_key, copy, actor=self.actor)
        if copy is None:
            self.report.clean += 1
            return
        self.report.scrubbed += 1
        if not self.dry_run:
            await self._retire(ref)

    async def _store(self, copy: Copy) -> None:
        """Store COPY and read it back (ScrubFailed unless it comes back whole)."""
        await self.storage.put(copy.key, copy.data, copy.content_type)
        try:
            whole = await self.storage.get(copy.key) == copy.data
        except NotFound:
            whole = False
        if not whole:
            raise ScrubFailed(f"its copy {copy.key} did not read back whole from object storage: left as it is")

    async def _retire(self, ref) -> None:
        try:
            async with session_scope(self.maker) as session:
                deleted = await retire(session, self.storage, ref.id)
        except ServiceUnavailable as exc:
            raise ServiceUnavailable(f"the object it replaced is not deleted yet ({exc.message}): a rerun deletes "
                                     "it") from None
        if deleted is not None:
            self.report.deleted += deleted
            self.report.kept += not deleted
