"""Catalog import and reindex, one batch at a time (the caller owns the session and commits per batch).

Idempotent by content: an image is identified by its sha256; one already embedded for the current
model is skipped, one stored but not yet embedded (new model, interrupted run) is only embedded.
An image is stored as a copy without its metadata (`raiox.vision.io.metadata_free`: no EXIF, no DICOM
patient or device attributes; it reads back as exactly the pixels embedded), content-addressed
(`kit.storage.content_key`), so the same picture is stored once; the reference's sha256 stays that of the
file as given, the identity a re-run recognises. Each reference is embedded from its most confident
fixture (vision `locate` + `canonical_crop`, embedded in one batch); an image with no fixture is skipped
unless `whole_image=True`, which embeds it the way `raiox.vision.embed_reference` does.
"""

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog import repository
from raiox.catalog.sources import ImportItem, Skip
from raiox.catalog.vector_index import ensure_vector_index
from raiox.kit.errors import RaioxError
from raiox.kit.storage import Storage, content_key
from raiox.models import EMBEDDING_DIM


@dataclass
class ImportReport:
    added: int = 0  # new reference images, stored and embedded
    embedded: int = 0  # reference images already stored, now embedded for this model
    already: int = 0  # already embedded for this model: nothing to do
    pruned: int = 0  # embeddings of other models deleted (reindex --prune)
    relocated: int = 0  # fixture boxes placed again by the current localiser (reindex --relocate)
    skipped: list[Skip] = field(default_factory=list)
    kept: list[Skip] = field(default_factory=list)  # stale boxes kept (reindex --relocate), with the reason
    stored: list[str] = field(default_factory=list)  # "origin sha256:<12 hex>" of each image added or embedded

    def skip(self, origin: str, reason: str) -> None:
        self.skipped.append(Skip(origin, reason))


@dataclass
class _Fetched:
    """An item's sha256, the metadata-free copy to store (``data``, ``content_type``) and its decoded image, or
    what went wrong reading (``error``) or decoding the item (``bad``)."""

    sha256: str = ""
    data: bytes = b""
    content_type: str = ""
    image: np.ndarray | None = None
    error: Exception | None = None
    bad: Exception | None = None


@dataclass
class _Ready:
    item: ImportItem
    data: bytes  # what is stored: the metadata-free copy
    content_type: str
    sha256: str  # of the item's own bytes
    image: np.ndarray
    box: np.ndarray | None = None
    vector: np.ndarray | None = None


def decode(data: bytes, filename: str | None) -> np.ndarray:
    from raiox.kit.settings import get_settings
    from raiox.vision import read_image

    return read_image(data, filename, max_pixels=get_settings().max_pixels)


def prepare(data: bytes, filename: str | None) -> tuple[bytes, str, np.ndarray]:
    """(bytes, media type) of DATA's metadata-free copy, the one stored, and the image decoded from that copy: what
    is embedded is what a reindex reads back."""
    from raiox.kit.settings import get_settings
    from raiox.vision import metadata_free

    clean, content_type = metadata_free(data, filename, max_pixels=get_settings().max_pixels)
    return clean, content_type, decode(clean, filename)


NO_FIXTURE = "no fixture found (use --whole-image to embed the whole image)"
# images located at once (rendering, decoding and locating release the GIL for most of their time)
WORKERS = min(4, os.cpu_count() or 1)


def embed_images(images: list[np.ndarray], embedder,
                 whole_image: bool) -> list[tuple[np.ndarray | None, np.ndarray] | str]:
    """Per image: (box, vector) of its most confident fixture, or the reason it has none.

    Crops of all images are embedded in one batch; an image without a fixture is embedded whole
    (`embed_reference`, box None) when `whole_image`, else reported."""
    from raiox.vision import canonical_crop, embed_reference, locate
    from raiox.vision.embedders import crop_size

    results: list = [None] * len(images)
    boxes, crops = {}, []
    with ThreadPoolExecutor(WORKERS) as pool:
        located = list(pool.map(locate, images))
    for index, (image, found) in enumerate(zip(images, located, strict=True)):
        if found:
            boxes[index] = np.asarray(found[0].box, dtype=np.float32)
            crops.append(canonical_crop(image, boxes[index], crop_size(embedder)))
        elif whole_image:
            results[index] = (None, np.asarray(embed_reference(image, embedder), dtype=np.float32))
        else:
            results[index] = NO_FIXTURE
    vectors = embedder.embed(crops) if crops else []
    for (index, box), vector in zip(boxes.items(), vectors, strict=True):
        results[index] = (box, np.asarray(vector, dtype=np.float32))
    return results


class Importer:
    """Imports batches of items for one embedder, remembering what this run has seen."""

    def __init__(self, storage: Storage, embedder, *, whole_image: bool = False, decode_slots: int = 4) -> None:
        """DECODE_SLOTS: items read and decoded at once (each decoded film holds its pixels until the batch is
        embedded; a film at the pixel cap takes over a gigabyte while it is decoded)."""
        from raiox.vision.detect import localiser_id

        self.storage, self.embedder, self.whole_image = storage, embedder, whole_image
        self._decoding = asyncio.Semaphore(decode_slots)
        self.localiser = localiser_id()
        self.report = ImportReport()
        self.seen: dict[str, ImportItem] = {}
        self._indexed = False
        # (system id, manufacturer, name) -> why those names are refused (None: they are not)
        self._clashes: dict[tuple[str, str, str], str | None] = {}

    async def import_batch(self, session: AsyncSession, items: list[ImportItem | Skip]) -> None:
        if not self._indexed:
            await ensure_vector_index(session, self.embedder.model_id)
            self._indexed = True
        fetched = await asyncio.gather(*(self._fetch(item) for item in items))  # read and decode, DECODE_SLOTS at once
        loaded = [ready for item, got in zip(items, fetched, strict=True)
                  if (ready := self._accept(item, got)) is not None]
        todo = await self._filter_known(session, loaded)
        await asyncio.to_thread(self._embed, todo)
        rows = []
        for ready in todo:
            if ready.vector is None:
                continue
            rows.append(await self._store(session, ready))
        await repository.put_embeddings(session, [r[:2] for r in rows], np.array([r[2] for r in rows]),
                                        self.embedder.model_id)

    async def _fetch(self, item: ImportItem | Skip) -> _Fetched:
        if isinstance(item, Skip):
            return _Fetched()
        async with self._decoding:
            return await self._load(item)

    async def _load(self, item: ImportItem) -> _Fetched:
        try:
            data = await asyncio.to_thread(item.load)
        except Exception as exc:  # noqa: BLE001 - any read/download failure is reported, the run goes on
            return _Fetched(error=exc)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            clean, content_type, image = await asyncio.to_thread(prepare, data, item.filename)
        except (RaioxError, ValueError, OSError) as exc:
            return _Fetched(sha256, bad=exc)
        return _Fetched(sha256, clean, content_type, image)

    def _accept(self, item: ImportItem | Skip, got: _Fetched) -> _Ready | None:
        """The item ready to embed, or None with the reason reported (in the items' order, so the first
        of two identical images is the one kept)."""
        if isinstance(item, Skip):
            self.report.skipped.append(item)
            return None
        if got.error is not None:
            self.report.skip(item.label, f"unreadable: {_reason(got.error)}")
            return None
        sha256 = got.sha256
        first = self.seen.setdefault(sha256, item)
        if first is not item:
            self.report.skip(item.label, f"duplicate of {first.label}")
            return None
        if got.bad is not None:
            self.report.skip(item.label, f"not a usable image: {_reason(got.bad)}")
            return None
        return _Ready(item, got.data, got.content_type, sha256, got.image)

    async def _filter_known(self, session: AsyncSession, loaded: list[_Ready]) -> list[_Ready]:
        known = await repository.find_references(session, [r.sha256 for r in loaded])
        ids = [image_id for entries in known.values() for image_id, _ in entries]
        embedded = await repository.embedded_image_ids(session, ids, self.embedder.model_id)
        todo = []
        for ready in loaded:
            if why := await self._name_clash(session, ready.item):
                self.report.skip(ready.item.label, why)
                continue
            entries = known.get(ready.sha256, [])
            other = [system_id for _, system_id in entries if system_id != ready.item.system_id]
            if other:
                self.report.skip(ready.item.label, f"same image already in system {other[0]}")
            elif entries and entries[0][0] in embedded:
                self.report.already += 1
            else:
                todo.append(ready)
        return todo

    async def _name_clash(self, session: AsyncSession, item: ImportItem) -> str | None:
        """Why ITEM's system cannot be created: another system has its manufacturer + name, letter case, accents and
        spaces aside (the catalog's unique index); None when it can (asked once per system and names in a run)."""
        names = (item.system_id, item.manufacturer, item.system)
        if names not in self._clashes:
            other = await repository.system_named(session, item.manufacturer, item.system, other_than=item.system_id)
            self._clashes[names] = other and (
                f"system {item.manufacturer} {item.system} ({item.system_id}) would be a look-alike of "
                f"{other.manufacturer} {other.name} ({other.id}): letter case, accents and spaces do not make "
                f"another system; name it as {other.id} is named, or add the image to {other.id} in the panel")
        return self._clashes[names]

    def _embed(self, todo: list[_Ready]) -> None:
        for ready, result in zip(todo, embed_images([r.image for r in todo], self.embedder, self.whole_image),
                                 strict=True):
            if isinstance(result, str):
                self.report.skip(ready.item.label, result)
            else:
                ready.box, ready.vector = result

    async def _store(self, session: AsyncSession, ready: _Ready) -> tuple:
        item = ready.item
        key, _ = content_key(ready.data)
        await self.storage.put(key, ready.data, ready.content_type)
        await repository.upsert_system(session, item.system_id, item.manufacturer, item.system, item.attributes,
                                       spec=item.spec)
        existing = await repository.find_references(session, [ready.sha256])
        height, width = ready.image.shape[:2]
        image_id = await repository.add_reference_image(
            session, system_id=item.system_id, storage_key=key, sha256=ready.sha256, width=width, height=height,
            source=item.source, origin=item.origin, box=None if ready.box is None else ready.box.tolist(),
            located_by=None if ready.box is None else self.localiser, metadata_free=True,
        )
        if existing:
            self.report.embedded += 1
        else:
            self.report.added += 1
        self.report.stored.append(f"{item.origin} sha256:{ready.sha256[:12]}")
        return image_id, item.system_id, ready.vector


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


RELOCATE_MIN_IOU = 0.3  # a located fixture this close to the stored box is the same fixture
LOST_FIXTURE = "kept its stored box: the current localiser finds no fixture there"


def relocated_box(image: np.ndarray, stored: list) -> np.ndarray | None:
    """The box the current localiser gives the fixture of the stored box (the located one overlapping
    it most), or None when none overlaps it by RELOCATE_MIN_IOU."""
    from raiox.vision import locate
    from raiox.vision.detect import box_iou

    old = np.asarray(stored, dtype=np.float32)
    scored = [(box_iou(found.box, old), found.box) for found in locate(image)]
    iou, box = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    return None if iou < RELOCATE_MIN_IOU else np.asarray(box, dtype=np.float32)


class Reindexer:
    """Re-embeds stored reference images with the current model, from the stored fixture box; with
    `relocate`, a box another localiser placed is located again first (`relocated_box`) and stored."""

    def __init__(self, storage: Storage, embedder, *, relocate: bool = False) -> None:
        from raiox.vision.detect import localiser_id

        self.storage, self.embedder = storage, embedder
        self.localiser = localiser_id() if relocate else None
        self.report = ImportReport()
        self._indexed = False

    def _stale(self, ref) -> bool:
        return (self.localiser is not None and bool(ref.box) and ref.source != "case"
                and ref.located_by != self.localiser)

    async def ensure_index(self, session: AsyncSession) -> None:
        """The model's vector index, created once per run (a run with nothing to embed creates it too: the app
        role, which adds references later, cannot)."""
        if not self._indexed:
            await ensure_vector_index(session, self.embedder.model_id)
            self._indexed = True

    async def reindex_batch(self, session: AsyncSession, images: list) -> None:
        await self.ensure_index(session)
        decoded = []
        for ref in images:
            try:
                data = await self.storage.get(ref.storage_key)
                decoded.append((ref, await asyncio.to_thread(decode, data, ref.origin)))
            except (RaioxError, ValueError, OSError) as exc:
                self.report.skip(ref.origin or ref.storage_key, f"cannot re-read: {_reason(exc)}")
        boxes, stale = await asyncio.to_thread(self._boxes, decoded)
        for i in stale:
            await repository.set_box(session, decoded[i][0].id, boxes[i], self.localiser)
        vectors = await asyncio.to_thread(self._embed, decoded, boxes)
        await repository.put_embeddings(session, [(ref.id, ref.system_id) for ref, _ in decoded], vectors,
                                        self.embedder.model_id)
        self.report.embedded += len(decoded)
        self.report.stored.extend(f"{ref.origin or ref.storage_key} sha256:{ref.sha256[:12]}" for ref, _ in decoded)

    def _boxes(self, decoded: list) -> tuple[list, list[int]]:
        """Each reference's box to embed (the stored one, or where stale the one located again), and which
        references were stale (their box, new or kept, is now this localiser's)."""
        boxes = [ref.box for ref, _ in decoded]
        stale = [i for i, (ref, _) in enumerate(decoded) if self._stale(ref)]
        with ThreadPoolExecutor(WORKERS) as pool:
            found = list(pool.map(lambda i: relocated_box(decoded[i][1], decoded[i][0].box), stale))
        for i, box in zip(stale, found, strict=True):
            if box is None:
                self.report.kept.append(Skip(decoded[i][0].origin or decoded[i][0].storage_key, LOST_FIXTURE))
            else:
                boxes[i] = box.tolist()
                self.report.relocated += 1
        return boxes, stale

    def _embed(self, decoded: list, boxes: list) -> np.ndarray:
        from raiox.vision import canonical_crop, embed_reference
        from raiox.vision.embedders import crop_size

        vectors = np.zeros((len(decoded), EMBEDDING_DIM), dtype=np.float32)
        boxed = [i for i, box in enumerate(boxes) if box]
        if boxed:
            size = crop_size(self.embedder)
            crops = [canonical_crop(decoded[i][1], np.asarray(boxes[i], dtype=np.float32), size) for i in boxed]
            vectors[boxed] = self.embedder.embed(crops)
        for i, (_, image) in enumerate(decoded):
            if not boxes[i]:
                vectors[i] = embed_reference(image, self.embedder)
        return vectors
