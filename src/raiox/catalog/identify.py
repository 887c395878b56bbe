"""Identify implant systems in one image: locate fixtures, embed them, search the catalog.

Decoding and analysing an image is the heavy part (a 59-MP 16-bit PNG: ~10 s, ~400 MB): at most
``RAIOX_IDENTIFY_CONCURRENCY`` images per process go through it at once; the others wait for a slot
(``raiox_identify_waiting``), so parallel uploads cannot exhaust the server's memory.
"""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from functools import partial

import numpy as np

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog.lookalike import look_alike
from raiox.catalog.schemas import CandidateOut, DifferenceOut, IdentifyOut, ImplantOut
from raiox.catalog.search import search_fixture
from raiox.kit.errors import RaioxError, ServiceUnavailable
from raiox.kit.settings import get_settings


def _round_box(box) -> list[list[float]]:
    return [[round(float(x), 1), round(float(y), 1)] for x, y in box]


def connection_out(probs) -> dict[str, float] | None:
    """The connection reader's probabilities by class name (None: not read)."""
    from raiox.vision.connection import CLASSES

    return None if probs is None else {name: round(float(p), 4) for name, p in zip(CLASSES, probs)}


def _features(read) -> dict[str, dict[str, float]] | None:
    from raiox.vision.attributes import HEADS

    if read is None:
        return None
    return {name: {str(value).lower(): round(float(p), 4) for value, p in zip(HEADS[name][0], np.exp(logp))}
            for name, logp in read.items()}


def stored_features_out(stored: dict | None) -> dict[str, dict[str, float]] | None:
    """A fixture's stored feature read ({feature: [p per value]}) as the API shows it: {feature: {value: p}}."""
    from raiox.vision.attributes import HEADS

    if not stored:
        return None
    return {name: {str(value).lower(): round(float(p), 4) for value, p in zip(HEADS[name][0], probs)}
            for name, probs in stored.items() if name in HEADS}


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (size, its semaphore)
_queued: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> images waiting for a slot


class CatalogMissing(ServiceUnavailable):
    """The catalog has no vectors of the model that embedded the image (not loaded yet, or the model changed without
    `raiox catalog reindex`): no answer rather than "no candidate", which a client would take for a real one."""

    code = "catalog_missing"


class Busy(ServiceUnavailable):
    """Every analysis slot is taken and as many images as allowed already wait (RAIOX_IDENTIFY_MAX_WAITING)."""

    code = "busy"


def _semaphore() -> asyncio.Semaphore:
    """This event loop's semaphore of RAIOX_IDENTIFY_CONCURRENCY slots (a semaphore belongs to one loop)."""
    loop, size = asyncio.get_running_loop(), get_settings().identify_concurrency
    held = _slots.get(loop)
    if held is None or held[0] != size:
        held = _slots[loop] = (size, asyncio.Semaphore(size))
    return held[1]


async def _wait_for_slot(max_waiting: int | None = None) -> asyncio.Semaphore:
    """Wait for one of the RAIOX_IDENTIFY_CONCURRENCY analysis slots; the caller releases it. MAX_WAITING: with
    every slot taken and that many images waiting already, `Busy` (503) at once instead of one more in the queue
    (each waiting request holds its image in memory)."""
    from raiox.kit.metrics import IDENTIFY_WAITING

    loop, semaphore = asyncio.get_running_loop(), _semaphore()
    if max_waiting is not None and semaphore.locked() and _queued.get(loop, 0) >= max_waiting:
        raise Busy(f"busy: every analysis slot is taken and {max_waiting} image(s) wait already; "
                   "send it again in a few seconds")
    _queued[loop] = _queued.get(loop, 0) + 1
    IDENTIFY_WAITING.inc()
    try:
        await semaphore.acquire()
    finally:
        _queued[loop] -= 1
        IDENTIFY_WAITING.dec()
    return semaphore


def _release(semaphore: asyncio.Semaphore, work: asyncio.Future) -> None:
    semaphore.release()
    if not work.cancelled():
        work.exception()  # retrieved: a request that went away leaves no "exception was never retrieved"


MAX_BOXES = 20
MIN_BOX = 8  # pixels: the shortest side of a manual box (the panel's marks use the same floor)


def parse_boxes(text: str | None) -> list | None:
    """Manual boxes from JSON: a list of boxes, each ``[x0, y0, x1, y1]`` (fitted to the implant it frames,
    ``raiox.vision.pipeline.fit_box``) or four ``[x, y]`` corners with the platform edge first; None when TEXT is
    empty."""
    import json

    from raiox.kit.errors import Unprocessable

    if text is None or not text.strip():
        return None
    try:
        boxes = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than the parser goes
        raise Unprocessable("boxes: not JSON; expected [[x0, y0, x1, y1], ...] or [[[x, y] x 4], ...]") from None
    if not isinstance(boxes, list) or not boxes or len(boxes) > MAX_BOXES:
        raise Unprocessable(f"boxes: expected a list of 1 to {MAX_BOXES} boxes")
    for n, box in enumerate(boxes, start=1):
        check_box(box, f"boxes[{n}]")
    return boxes


def check_box(box, name: str = "box") -> None:
    """A 422 naming NAME unless BOX is ``[x0, y0, x1, y1]`` (x1 > x0, y1 > y0) or four ``[x, y]`` corners, all
    finite numbers, at least MIN_BOX pixels on a side (a smaller box holds no implant to read: the crop would be
    degenerate)."""
    import math

    from raiox.kit.errors import Unprocessable

    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    plain = isinstance(box, list) and len(box) == 4 and all(map(number, box))
    corners = isinstance(box, list) and len(box) == 4 and all(
        isinstance(p, list) and len(p) == 2 and all(map(number, p)) for p in box)
    if not (plain or corners):
        raise Unprocessable(f"{name}: expected [x0, y0, x1, y1] or four [x, y] corners of finite numbers")
    if plain and not (box[2] > box[0] and box[3] > box[1]):
        raise Unprocessable(f"{name}: x1 must exceed x0 and y1 exceed y0")
    sides = ([box[2] - box[0], box[3] - box[1]] if plain
             else [math.dist(box[i], box[(i + 1) % 4]) for i in range(4)])
    if min(sides) < MIN_BOX:
        raise Unprocessable(f"{name}: under {MIN_BOX} pixels on a side; draw around the whole implant")
    if corners and not _convex(box):
        raise Unprocessable(f"{name}: the four corners must go round a quadrilateral in order (its edges do not "
                            "cross, its area is not zero)")


def _convex(corners: list) -> bool:
    """Whether four corners, in order, bound a convex quadrilateral: every turn the same way (no crossing edges,
    no three corners on a line, a real area)."""
    turns = []
    for i in range(4):
        (ax, ay), (bx, by), (cx, cy) = corners[i], corners[(i + 1) % 4], corners[(i + 2) % 4]
        turns.append((bx - ax) * (cy - by) - (by - ay) * (cx - bx))
    return all(t > 0 for t in turns) or all(t < 0 for t in turns)


class ClientGone(RaioxError):
    """The client hung up while its image waited for an analysis slot: the slot goes to the next one."""

    status_code = 499  # nginx's "client closed request": nobody reads the answer
    code = "client_gone"


async def analyse_in_slot(data: bytes, filename: str | None, embedder, boxes: list | None = None, *,
                          checked: bool = True, gone: Callable[[], Awaitable[bool]] | None = None,
                          max_waiting: int | None = None) -> list:
    """Decode and analyse in a worker thread once a slot is free. The slot is held until the thread ends, even
    when the request goes away meanwhile: cancelling an await does not stop the thread or free its memory.
    CHECKED: BOXES (from a caller) must lie inside the image; stored boxes (a located implant's oriented corners
    may overhang the film's edge) are read as they are. GONE (a request's `is_disconnected`): asked once the slot
    is free; a client that hung up while waiting gets no analysis (`ClientGone`), so a burst of abandoned uploads
    does not hold the next ones back. MAX_WAITING: see `_wait_for_slot` (the API's bound; the panel's marks and
    rereads wait without one)."""
    semaphore = await _wait_for_slot(max_waiting)
    if gone is not None and await gone():
        semaphore.release()
        raise ClientGone("the client closed the connection while waiting for an analysis slot")
    work = asyncio.ensure_future(asyncio.to_thread(_decode_and_analyse, data, filename, embedder, boxes, checked))
    work.add_done_callback(partial(_release, semaphore))
    return await asyncio.shield(work)


def _decode_and_analyse(data: bytes, filename: str | None, embedder, boxes: list | None = None,
                        checked: bool = True) -> list:
    from raiox.kit.errors import Unprocessable
    from raiox.vision import analyze, read_image

    image = read_image(data, filename, max_pixels=get_settings().max_pixels)
    if boxes is not None and checked:
        height, width = image.shape[:2]
        for n, box in enumerate(np.asarray(b, np.float64).reshape(-1, 2) for b in boxes):
            inside = (box[:, 0] >= 0) & (box[:, 0] <= width) & (box[:, 1] >= 0) & (box[:, 1] <= height)
            if not inside.all():
                raise Unprocessable(f"boxes[{n + 1}]: outside the {width}x{height} image")
    try:
        return analyze(image, embedder, boxes, fit=True)
    except ValueError as exc:  # a given box the crop cannot be cut from (the localiser's own boxes never are)
        if boxes is None:
            raise
        raise Unprocessable(f"boxes: cannot read an implant in a box: {exc}") from None


async def identify(session: AsyncSession, data: bytes, filename: str | None, top_k: int, embedder=None,
                   boxes: list | None = None, gone: Callable[[], Awaitable[bool]] | None = None,
                   max_waiting: int | None = None) -> IdentifyOut:
    """Ranked candidates per implant found (`raiox identify`, `POST /identify`), or per manual box given
    (``parse_boxes``; the localiser is skipped). Stores nothing."""
    from raiox.vision import get_embedder

    embedder = embedder or await asyncio.to_thread(get_embedder)
    fixtures = await analyse_in_slot(data, filename, embedder, boxes, gone=gone, max_waiting=max_waiting)
    implants = []
    for fixture in fixtures:
        fixture, found = await search_fixture(session, fixture, embedder.model_id, top_k)
        implants.append(ImplantOut(
            box=_round_box(fixture.box), confidence=round(float(fixture.confidence), 4),
            connection=connection_out(fixture.connection), features=_features(fixture.features),
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
