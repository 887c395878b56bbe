"""Films of a case awaiting review that could not be downloaded (an upload host's one-off 403 or 404, a login page
in place of the file), fetched again on the operator's request (`POST /cases/{id}/retry`, the panel's retry):
each film got is stored and analysed, its implants searched in the catalog and added to the case, and the case's
ranking fused again. What the operator did on the other films (marks, removed implants) stays as it is.

Job `refetch_images` {case_id} (serialised with the case's other jobs by the lock `case:<id>`); a transient
outage raises (the job retries); a film refused again keeps `failed` with its new reason. A film is marked `stored`
as soon as its bytes are (its own commit), its implants only with the case's: a job stopped between the two (killed,
an analysis or the database failing) leaves a film `stored` and not analysed, which the next run (the job's retry or
the operator's) analyses from storage, rather than skip it for ever as downloaded. A case decided (approved or
rejected) while its films were fetched stays as decided: the films got are kept, `skipped` with the reason (an image)
or `invalid` (not one), never analysed into it (`processing.settle_after_decision`), and its history says so."""

import asyncio
import uuid

from raiox.cases.repository import add_event
from raiox.intake import repository
from raiox.intake.download import new_client
from raiox.intake.processing import (
    ACTOR, DECIDED, DOWNLOADS, Analysed, _needs_download, analyse_films, decided_reason, fetch_and_store, gather_all,
    locked_case, replace_ranking, save_analysed, settle_after_decision,
)
from raiox.kit.logging import get_logger
from raiox.kit.settings import get_settings
from raiox.models import CaseEvent, CaseImage, CaseStatus, ImageStatus

log = get_logger(__name__)


# films of a case awaiting review still to be brought in: not downloaded, or downloaded by a run that stopped before
# their analysis was saved (every film a finished run stored is `processed` or `invalid`)
TO_REFETCH = (ImageStatus.failed, ImageStatus.stored)


async def failed_films(case_id: uuid.UUID) -> tuple[list[CaseImage], list[CaseImage]]:
    """The films of CASE_ID whose download failed (or whose analysis a stopped run never saved), while it awaits
    review (none otherwise); and its films analysed before (processed or invalid: the originals a film fetched again
    may repeat; a `skipped` copy is none)."""
    from raiox.kit.db import session_scope

    async with session_scope() as session:
        case = await locked_case(session, case_id)
        if case.status != CaseStatus.awaiting_review:
            log.info("refetch_skipped", case_id=str(case_id), status=case.status)
            if case.status in DECIDED:  # a film a stopped run stored: kept, never analysed into the decided case
                await repository.skip_stored_images(session, case_id, decided_reason(case.status))
            return [], []
        images = await repository.list_images(session, case_id)
        return ([i for i in images if i.status in TO_REFETCH],
                [i for i in images if i.status in (ImageStatus.processed, ImageStatus.invalid)])


async def refetch(case_id: uuid.UUID) -> int:
    """Download CASE_ID's failed films again (a film already stored is read back from storage) and add what they
    show to the case; the number of films analysed. A film that turns out to repeat one of the case's (the same
    bytes: the dentist sent it twice) is not analysed again but `skipped` as its duplicate, as `process_case` does,
    and counted as such, never as a film analysed."""
    images, settled = await failed_films(case_id)
    fresh: dict[uuid.UUID, bytes] = {}
    async with new_client(get_settings()) as http:
        gate = asyncio.Semaphore(DOWNLOADS)

        async def fetch(image: CaseImage) -> None:
            async with gate:
                if (data := await fetch_and_store(image, http)) is not None:
                    fresh[image.id] = data

        await gather_all([fetch(i) for i in images if await _needs_download(i)])
    analysed = await analyse_films(images, fresh, settled)
    if images:
        await _save(case_id, analysed, missing=sum(not i.storage_key for i in images))  # refused again: kept `failed`
    return len(analysed) - _copies(analysed)


def _copies(analysed: list[Analysed]) -> int:
    """How many of ANALYSED repeat a film of the case and were skipped, not analysed (`analyse_films`)."""
    return sum(item.status == ImageStatus.skipped for item in analysed)


def history_reason(analysed: int, copies: int, found: int, missing: int = 0) -> str:
    """The case history's entry for a run that got ANALYSED films (analysed, their FOUND implants added) and COPIES
    of films the case had (skipped): copies are never counted as films analysed. MISSING films could not be
    downloaded again (kept `failed`, their new reason on each): said, never read as "0 films downloaded"."""
    failed = f"{missing} film(s) could not be downloaded again"
    if missing and not analysed and not copies:
        return failed
    if not copies:
        reason = f"{analysed} film(s) downloaded again, {found} implant(s) found"
    else:
        reason = (f"{analysed} film(s) downloaded again and analysed, {copies} duplicate(s) skipped, "
                  f"{found} implant(s) found")
    return f"{reason}, {failed}" if missing else reason


def decided_history_reason(got: int, not_analysed: int, copies: int) -> str:
    """The entry for a run whose case was decided meanwhile: GOT films kept (NOT_ANALYSED of them images), COPIES of
    films the case had skipped."""
    reason = f"{got} film(s) downloaded again after the case was decided, {not_analysed} not analysed"
    return f"{reason}, {copies} duplicate(s) skipped" if copies else reason


async def _save(case_id: uuid.UUID, analysed: list[Analysed], missing: int = 0) -> None:
    from raiox.kit.db import session_scope
    from raiox.vision import get_embedder

    settings, model_id, copies = get_settings(), get_embedder().model_id, _copies(analysed)
    async with session_scope() as session:
        case = await locked_case(session, case_id)
        if case.status != CaseStatus.awaiting_review:  # decided while the films were fetched: left as decided
            log.warning("case_moved_during_refetch", case_id=str(case_id), status=case.status)
            if case.status in DECIDED and analysed:
                skipped = await settle_after_decision(session, case.status, analysed)
                reason = decided_history_reason(len(analysed) - copies, skipped, copies)
                await add_event(session, CaseEvent(case_id=case_id, from_status=case.status, to_status=case.status,
                                                   actor=ACTOR, reason=reason))
            return
        found = 0
        for item in analysed:
            found += await save_analysed(session, item, model_id, settings.top_k)
        await replace_ranking(session, case_id)
        await add_event(session, CaseEvent(case_id=case_id, from_status=case.status, to_status=case.status,
                                           actor=ACTOR,
                                           reason=history_reason(len(analysed) - copies, copies, found, missing)))
    log.info("case_films_refetched", case_id=str(case_id), films=len(analysed) - copies, duplicates=copies,
             fixtures=found, not_downloaded=missing)
