"""Processing one case: download -> store (content-addressed) -> decode -> locate/embed -> search -> rank.

Run by the `process_case` job. Every step is safe to repeat: images already stored are read back
from storage instead of downloaded again, and the final write replaces the case's detected fixtures,
their results and its ranking in one transaction (a re-run never duplicates anything). Transient
trouble (Jotform/upload host down, storage down) raises, so the job is retried; a file that is not
an image, or that cannot be fetched at all, marks only that image and the case goes on; a case left
without any usable image (none sent, none fetched, none readable) becomes `failed` with the reason.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import numpy as np

from raiox.cases.service import get_or_404, transition
from raiox.intake import repository
from raiox.intake.download import DownloadFailed, download, new_client, public_url
from raiox.intake.ranking import fuse
from raiox.kit.db import session_scope
from raiox.kit.errors import NotFound
from raiox.kit.logging import get_logger
from raiox.kit.settings import get_settings
from raiox.kit.storage import content_key, get_storage
from raiox.models import CaseImage, CaseStatus, ImageStatus

log = get_logger(__name__)
ACTOR = "system:worker"
RUNNABLE = {CaseStatus.received, CaseStatus.processing, CaseStatus.failed}
# reviewed: approved or rejected, delivered or not; never back to review (cases.service.TRANSITIONS)
DECIDED = frozenset({CaseStatus.approved, CaseStatus.rejected, CaseStatus.delivered, CaseStatus.delivery_failed})
DOWNLOADS = 4
ANALYSES = max(1, min(4, os.cpu_count() or 1))


@dataclass
class Analysed:
    image_id: uuid.UUID
    status: str  # processed | invalid
    error: str | None = None
    size: tuple[int, int] | None = None  # (width, height)
    fixtures: list = field(default_factory=list)  # raiox.vision.FixtureEmbedding


class CaseMissing(NotFound):
    """The case itself is gone (deleted while its job waited): the job ends, nothing to retry. Distinct from any
    other NotFound on the way (a stored image missing from storage is trouble to retry, then a failed case)."""


async def locked_case(session, case_id: uuid.UUID):
    try:
        return await get_or_404(session, case_id, for_update=True)
    except NotFound as exc:
        raise CaseMissing(exc.message) from None


async def start(case_id: uuid.UUID, attempt: int) -> list[CaseImage] | None:
    """Mark the case `processing` (recorded once per attempt); None when there is nothing to do."""
    async with session_scope() as session:
        case = await locked_case(session, case_id)
        if case.status not in RUNNABLE:
            log.info("case_already_processed", case_id=str(case_id), status=case.status)
            if case.status in DECIDED:  # films an earlier run stored but stopped before analysing
                await repository.skip_stored_images(session, case_id, decided_reason(case.status))
            return None
        reason = "processing started" if attempt == 0 else f"processing attempt {attempt + 1}"
        await transition(session, case, CaseStatus.processing, actor=ACTOR, reason=reason)
        return await repository.list_images(session, case_id)


async def fetch_and_store(image: CaseImage, http: httpx.AsyncClient) -> bytes | None:
    """Download IMAGE once and store its bytes under their sha256 (stored once); mark it stored/failed."""
    settings = get_settings()
    try:
        got = await download(image.source_url, settings, http=http)
    except DownloadFailed as exc:
        log.warning("image_download_failed", case_id=str(image.case_id), image_id=str(image.id), reason=exc.message)
        async with session_scope() as session:
            await repository.update_image(session, image.id, status=ImageStatus.failed, error=exc.message,
                                          storage_key=None)
        image.status, image.error, image.storage_key = ImageStatus.failed, exc.message, None
        return None
    key, digest = content_key(got.data)
    storage = get_storage()
    if not await storage.exists(key):
        await storage.put(key, got.data, got.content_type or "application/octet-stream")
    values = {"storage_key": key, "sha256": digest, "size_bytes": len(got.data), "status": ImageStatus.stored,
              "error": None, "content_type": (got.content_type or "")[:100] or None}
    async with session_scope() as session:
        await repository.update_image(session, image.id, **values)
    for name, value in values.items():
        setattr(image, name, value)
    log.info("image_stored", case_id=str(image.case_id), image_id=str(image.id),  # no URL: file names name patients
             bytes=len(got.data), sha256=digest[:12])
    return got.data


async def _needs_download(image: CaseImage) -> bool:
    """Not stored yet (pending, or failed before), or stored but gone from storage since (objects lost, storage
    switched): fetched again from its upload URL rather than failing the case on a missing object."""
    if image.storage_key is None:
        return image.status in (ImageStatus.pending, ImageStatus.failed)
    if await get_storage().exists(image.storage_key):
        return False
    log.warning("stored_image_missing", case_id=str(image.case_id), image_id=str(image.id), key=image.storage_key)
    image.storage_key = None
    return True


def _analyse_bytes(image_id: uuid.UUID, data: bytes, filename: str | None) -> Analysed:
    """CPU work (in a thread): decode (ImageDecodeError -> invalid) and locate + embed every fixture."""
    from raiox.vision import ImageDecodeError, analyze, get_embedder, read_image

    try:
        pixels = read_image(data, filename, max_pixels=get_settings().max_pixels)
    except ImageDecodeError as exc:
        return Analysed(image_id, ImageStatus.invalid, error=str(exc))
    except Exception as exc:  # a decoder crash on a hostile file must not sink the whole case
        log.error("image_decode_crashed", image_id=str(image_id), exc_info=True)
        return Analysed(image_id, ImageStatus.invalid, error=f"cannot decode the file: {type(exc).__name__}")
    height, width = pixels.shape[:2]
    try:
        fixtures = analyze(pixels, get_embedder())
    except MemoryError:
        raise
    except Exception as exc:  # deterministic on this image: retrying would only fail the other images too
        log.error("image_analysis_crashed", image_id=str(image_id), exc_info=True)
        return Analysed(image_id, ImageStatus.invalid, size=(width, height),
                        error=f"analysis failed: {type(exc).__name__}: {exc}")
    return Analysed(image_id, ImageStatus.processed, size=(width, height), fixtures=fixtures)


async def analyse(image: CaseImage, data: bytes | None = None) -> Analysed:
    """Analyse IMAGE (bytes just downloaded, else read back from storage) in a worker thread."""
    data = data if data is not None else await get_storage().get(image.storage_key)
    return await asyncio.to_thread(_analyse_bytes, image.id, data, image.filename)


async def save_results(case_id: uuid.UUID, analysed: list[Analysed], images: list[CaseImage]) -> str:
    """One transaction: replace fixtures/results/ranking, update images, move the case on. New status."""
    from raiox.vision import get_embedder

    settings, model_id = get_settings(), get_embedder().model_id
    async with session_scope() as session:
        case = await locked_case(session, case_id)
        if case.status != CaseStatus.processing:
            log.warning("case_moved_during_processing", case_id=str(case_id), status=case.status)
            if case.status in DECIDED:  # else runnable again (failed, received): the next run analyses what is stored
                await settle_after_decision(session, case.status, analysed)
            return case.status
        await repository.delete_automatic_fixtures(session, case_id)
        for item in analysed:
            await save_analysed(session, item, model_id, settings.top_k)
        await replace_ranking(session, case_id)
        usable = [a for a in analysed if a.status == ImageStatus.processed]
        if not usable:  # nothing an operator could review: failed with the reason, retry possible
            reason = no_image_reason(images, analysed)
            log.warning("case_without_usable_image", case_id=str(case_id), images=len(images),
                        reason=no_image_reason(images, analysed, named=False))
            await transition(session, case, CaseStatus.failed, actor=ACTOR, reason=reason)
        else:
            fixtures = await repository.count_fixtures(session, case_id)
            await transition(session, case, CaseStatus.awaiting_review, actor=ACTOR,
                             reason=f"{len(usable)} image(s) analysed, {fixtures} implant(s) found")
        return case.status


async def save_analysed(session, item: Analysed, model_id: str, top_k: int) -> int:
    """Record ITEM's film (status, error, size) and store the implants found on it after those it has (searched in
    the catalog, `store_fixture`); the number of implants stored."""
    await repository.update_image(session, item.image_id, status=item.status, error=item.error,
                                  width=item.size[0] if item.size else None,
                                  height=item.size[1] if item.size else None)
    index = await repository.next_fixture_index(session, item.image_id)
    for offset, located in enumerate(item.fixtures):
        await store_fixture(session, item.image_id, index + offset, located, model_id, top_k)
    return len(item.fixtures)


def duplicates(images: list[CaseImage], settled: Iterable[CaseImage] = ()) -> dict[uuid.UUID, CaseImage]:
    """Film id -> the case's earlier film with the same bytes (sha256), for the stored films: the dentist sent one
    film twice (two names, two questions). Analysed once: a copy would show its implants twice to the reviewer and on
    the report, and count them twice in the fused ranking (`ranking.fuse`'s mean over the best fixtures).
    SETTLED: the case's films analysed before (a refetch's other films): each stays the original of its bytes, a film
    of IMAGES repeating one is its copy, whatever their positions."""
    first: dict[str, CaseImage] = {}
    for image in sorted(settled, key=lambda i: i.position):
        if image.storage_key and image.sha256:
            first.setdefault(image.sha256, image)
    twins: dict[uuid.UUID, CaseImage] = {}
    for image in sorted(images, key=lambda i: i.position):
        if not image.storage_key or not image.sha256:
            continue
        if image.sha256 in first:
            twins[image.id] = first[image.sha256]
        else:
            first[image.sha256] = image
    return twins


def duplicate_reason(first: CaseImage) -> str:
    """A copy's reason (English, as recorded; the panel reads `reason.duplicate_upload`): which film it repeats."""
    return f"duplicate of {first.filename or f'file {first.position + 1}'}"


def decided_reason(status: str) -> str:
    return f"not analysed: the case was decided ({status}) before this film was analysed"


async def settle_after_decision(session, status: str, analysed: list[Analysed]) -> int:
    """Films a run stored and analysed for a case decided (STATUS) before their analysis could be saved: the decision
    stands as the reviewer made it (no implant added, no ranking fused again, nothing the result or a resend could
    show that the reviewer never saw). A film that is an image becomes `skipped` (its bytes kept, viewable, with the
    reason); one that is not, `invalid` with the decoder's reason. Rows another run saved meanwhile are left as they
    are. The number of films skipped."""
    skipped = 0
    for item in analysed:
        usable = item.status == ImageStatus.processed
        skipped += usable
        await repository.settle_stored_image(
            session, item.image_id, status=ImageStatus.skipped if usable else item.status,
            error=decided_reason(status) if usable else item.error,
            width=item.size[0] if item.size else None, height=item.size[1] if item.size else None)
    return skipped


async def store_fixture(session, image_id: uuid.UUID, index: int, located, model_id: str, top_k: int,
                        manual: bool = False) -> uuid.UUID:
    """Search the catalog for LOCATED (a `raiox.vision.FixtureEmbedding`) and store it as fixture INDEX of the image,
    with its ranked results. MANUAL: drawn by the operator (kept when the case is analysed again)."""
    from raiox.catalog.search import search_fixture

    fixture, candidates = await search_fixture(session, located, model_id, top_k)
    fixture_id = await repository.insert_fixture(session, {
        "case_image_id": image_id, "index": index, "manual": manual, "model_id": model_id,
        "box": np.asarray(fixture.box, dtype=float).round(2).tolist(), "confidence": float(fixture.confidence),
        **_reading(fixture)})
    await _store_results(session, fixture_id, candidates)
    return fixture_id


async def reread_fixture(session, fixture_id: uuid.UUID, located, model_id: str, top_k: int) -> None:
    """Fixture FIXTURE_ID read again (LOCATED: its own box read by the current models) and searched again: its
    embedding, reads and results are replaced; its box, confidence, index and manual flag are kept."""
    from raiox.catalog.search import search_fixture

    fixture, candidates = await search_fixture(session, located, model_id, top_k)
    await repository.update_fixture(session, fixture_id, {"model_id": model_id, **_reading(fixture)})
    await repository.delete_results(session, fixture_id)
    await _store_results(session, fixture_id, candidates)


def _reading(fixture) -> dict:
    """The columns the models fill for a fixture: its embedding, connection, design features and thread count."""
    return {
        "embedding": np.asarray(fixture.embedding, dtype=np.float32),
        "connection": None if fixture.connection is None else [round(float(p), 4) for p in fixture.connection],
        "features": None if fixture.features is None else {
            name: [round(float(p), 4) for p in np.exp(logp)] for name, logp in fixture.features.items()},
        "thread_turns": None if fixture.turns is None else round(float(fixture.turns.turns), 3),
    }


async def _store_results(session, fixture_id: uuid.UUID, candidates: list) -> None:
    await repository.insert_results(session, [
        {"fixture_id": fixture_id, "rank": rank, "system_id": c.system_id, "score": float(c.score),
         "reference_image_id": c.reference_image_id}
        for rank, c in enumerate(candidates, start=1)
    ])


async def replace_ranking(session, case_id: uuid.UUID) -> None:
    """The case's ranking fused again from every fixture of every image (after fixtures were added or removed)."""
    await repository.delete_ranking(session, case_id)
    ranking = fuse(await repository.case_evidence(session, case_id))
    await repository.insert_rankings(session, [
        {"case_id": case_id, "rank": rank, "system_id": f.system_id, "score": f.score, "evidence": f.evidence}
        for rank, f in enumerate(ranking, start=1)
    ])


def no_image_reason(images: list[CaseImage], analysed: list[Analysed], named: bool = True) -> str:
    """Why the case has no usable image, each file with its error. Recorded in English like every reason
    (the API reads it); the admin panel shows it in the operator's language. NAMED=False (the logs): files by
    their position, not their names (file names name patients)."""
    if not images:
        return "no file submitted"
    errors = {a.image_id: a.error for a in analysed}

    def name(image: CaseImage) -> str:
        return (image.filename or public_url(image.source_url)) if named else f"file {image.position + 1}"

    details = "; ".join(f"{name(i)}: {errors.get(i.id) or i.error or i.status}" for i in images)
    return f"no image could be downloaded ({details})" if not analysed else f"no usable image ({details})"


async def gather_all(coroutines: list) -> list:
    """Run COROUTINES concurrently, let every one finish (no orphan left running), then raise the first
    error if any (a transient one: the job is retried)."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def process_case(case_id: uuid.UUID, *, attempt: int = 0) -> str | None:
    """The whole pipeline for one case; raises on transient trouble (the job retries). Final status.

    Downloads run concurrently (DOWNLOADS at a time), analyses in worker threads (ANALYSES at a time:
    decoding, locating and embedding release the GIL for most of their time)."""
    started = time.perf_counter()
    images = await start(case_id, attempt)
    if images is None:
        return None
    async with new_client(get_settings()) as http:
        gate = asyncio.Semaphore(DOWNLOADS)
        fresh: dict[uuid.UUID, bytes] = {}

        async def fetch(image: CaseImage) -> None:
            async with gate:
                if (data := await fetch_and_store(image, http)) is not None:
                    fresh[image.id] = data

        await gather_all([fetch(i) for i in images if await _needs_download(i)])
    downloaded = time.perf_counter()
    analysed = await analyse_films(images, fresh)
    analysed_at = time.perf_counter()
    status = await save_results(case_id, analysed, images)
    log.info("case_processed", case_id=str(case_id), status=status, images=len(images),
             download_s=round(downloaded - started, 3), analyse_s=round(analysed_at - downloaded, 3),
             save_s=round(time.perf_counter() - analysed_at, 3))
    return status


async def analyse_films(images: list[CaseImage], fresh: dict[uuid.UUID, bytes],
                        settled: Iterable[CaseImage] = ()) -> list[Analysed]:
    """Analyse the stored films of IMAGES (FRESH: bytes just downloaded, by film id; the others are read back from
    storage), ANALYSES at a time. A film whose bytes repeat an earlier one of IMAGES, or one of SETTLED (the case's
    films analysed before), is not analysed: `skipped`, its reason naming the film it repeats (`duplicates`)."""
    twins = duplicates(images, settled)
    for image_id in twins:
        fresh.pop(image_id, None)
    lanes = asyncio.Semaphore(ANALYSES)

    async def analyse_one(image: CaseImage) -> Analysed:
        async with lanes:
            return await analyse(image, fresh.pop(image.id, None))

    analysed = await gather_all([analyse_one(i) for i in images if i.storage_key and i.id not in twins])
    return analysed + [Analysed(image_id, ImageStatus.skipped, error=duplicate_reason(first))
                       for image_id, first in twins.items()]


async def mark_failed(case_id: uuid.UUID, reason: str) -> None:
    """After the last retry: the case becomes `failed` with a human-readable reason, and so do its images still
    `pending` (never stored: the operator reads why on each; a retry fetches them again)."""
    async with session_scope() as session:
        try:
            case = await get_or_404(session, case_id, for_update=True)
        except NotFound:
            return
        if case.status in (CaseStatus.received, CaseStatus.processing):
            await transition(session, case, CaseStatus.failed, actor=ACTOR, reason=reason)
            await repository.fail_pending_images(session, case_id, reason)
