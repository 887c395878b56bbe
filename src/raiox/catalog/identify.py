"""Identify implant systems in one image: locate fixtures, embed them, search the catalog.

Decoding and analysing an image is the heavy part (a 59-MP 16-bit PNG: ~10 s, ~400 MB): at most
``RAIOX_IDENTIFY_CONCURRENCY`` images per process go through it at once; the others wait for a slot
(``raiox_identify_waiting``), so parallel uploads cannot exhaust the server's memory.
"""

import asyncio
import weakref
from functools import partial

import numpy as np

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog.lookalike import look_alike
from raiox.catalog.schemas import CandidateOut, DifferenceOut, IdentifyOut, ImplantOut
from raiox.catalog.search import search_fixture
from raiox.kit.settings import get_settings


def _round_box(box) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in box]


def _connection(probs) -> dict[str, float] | None:
    from raiox.vision.connection import CLASSES

    return None if probs is None else {name: round(float(p), 4) for name, p in zip(CLASSES, probs)}


def _features(read) -> dict[str, dict[str, float]] | None:
    from raiox.vision.attributes import HEADS

    if read is None:
        return None
    return {name: {str(value).lower(): round(float(p), 4) for value, p in zip(HEADS[name][0], np.exp(logp))}
            for name, logp in read.items()}


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (size, its semaphore)


def _semaphore() -> asyncio.Semaphore:
    """This event loop's semaphore of RAIOX_IDENTIFY_CONCURRENCY slots (a semaphore belongs to one loop)."""
    loop, size = asyncio.get_running_loop(), get_settings().identify_concurrency
    held = _slots.get(loop)
    if held is None or held[0] != size:
        held = _slots[loop] = (size, asyncio.Semaphore(size))
    return held[1]


async def _wait_for_slot() -> asyncio.Semaphore:
    """Wait for one of the RAIOX_IDENTIFY_CONCURRENCY analysis slots; the caller releases it."""
    from raiox.kit.metrics import IDENTIFY_WAITING

    semaphore = _semaphore()
    IDENTIFY_WAITING.inc()
    try:
        await semaphore.acquire()
    finally:
        IDENTIFY_WAITING.dec()
    return semaphore


def _release(semaphore: asyncio.Semaphore, work: asyncio.Future) -> None:
    semaphore.release()
    if not work.cancelled():
        work.exception()  # retrieved: a request that went away leaves no "exception was never retrieved"


async def _analyse(data: bytes, filename: str | None, embedder) -> list:
    """Decode and analyse in a worker thread once a slot is free. The slot is held until the thread ends, even
    when the request goes away meanwhile: cancelling an await does not stop the thread or free its memory."""
    semaphore = await _wait_for_slot()
    work = asyncio.ensure_future(asyncio.to_thread(_decode_and_analyse, data, filename, embedder))
    work.add_done_callback(partial(_release, semaphore))
    return await asyncio.shield(work)


def _decode_and_analyse(data: bytes, filename: str | None, embedder) -> list:
    from raiox.vision import analyze, read_image

    return analyze(read_image(data, filename, max_pixels=get_settings().max_pixels), embedder)


async def identify(session: AsyncSession, data: bytes, filename: str | None, top_k: int, embedder=None) -> IdentifyOut:
    """Ranked candidates per implant found (`raiox identify`, `POST /identify`). Stores nothing."""
    from raiox.vision import get_embedder

    embedder = embedder or await asyncio.to_thread(get_embedder)
    fixtures = await _analyse(data, filename, embedder)
    implants = []
    for fixture in fixtures:
        fixture, found = await search_fixture(session, fixture, embedder.model_id, top_k)
        implants.append(ImplantOut(
            box=_round_box(fixture.box), confidence=round(float(fixture.confidence), 4),
            connection=_connection(fixture.connection), features=_features(fixture.features),
            thread_turns=None if fixture.turns is None else round(fixture.turns.turns, 2),
            candidates=_candidates(found),
        ))
    return IdentifyOut(implants=implants, model_id=embedder.model_id)


def _candidates(found) -> list[CandidateOut]:
    """The search's answer, each candidate after the first with how its design differs from the first's
    (the specs the search selected with them)."""
    first = found[0].spec if found else None
    out = []
    for rank, c in enumerate(found):
        differs = look_alike(c.spec, first) if rank else None
        out.append(CandidateOut(
            system=c.system_id, manufacturer=c.manufacturer, name=c.name, score=round(c.score, 4),
            differs_from_first=None if differs is None else [
                DifferenceOut(field=name, value=mine, first=theirs) for name, mine, theirs in differs]))
    return out
