"""Implants the operator marks on a film (one the analysis missed, or boxed badly) or removes (not an implant): the
mark is fitted, embedded, read and searched like a located implant, stored as a manual fixture, and the case's
ranking is fused again. Only while the case awaits review; every change audited."""

import uuid
from types import SimpleNamespace

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.cases.numbering import implant_numbers
from raiox.catalog.identify import MIN_BOX, check_box
from raiox.kit.errors import Conflict, NotFound, Unprocessable
from raiox.models import CaseImage, CaseStatus, ImageStatus
from raiox.review import repository
from raiox.review.service import audit, not_awaiting, system_label

MIN_MARK = MIN_BOX  # pixels: a drawn box narrower or shorter than this is a slip of the mouse, not an implant
MAX_MARKS = 20  # marked implants per film (each mark analyses the whole film)
SAME_MARK_IOU = 0.9  # a mark overlapping an earlier one this much is that one again (a double submission)


def _same_mark(marked: list, box: list):
    """The earlier marked implant BOX repeats, if any."""
    from raiox.vision.detect import box_iou

    return next((f for f in marked if box_iou(np.asarray(f.box, np.float32), np.asarray(box, np.float32))
                 >= SAME_MARK_IOU), None)


async def markable_image(session: AsyncSession, case_id: uuid.UUID, image_id: uuid.UUID) -> CaseImage:
    """The analysed film of a case awaiting review on which an implant may be marked (404, 409 otherwise)."""
    case = await cases.get_or_404(session, case_id)
    if case.status != CaseStatus.awaiting_review:
        raise not_awaiting(case, "changed")
    image = await repository.case_image(session, case_id, image_id)
    if image is None:
        raise NotFound("image not found in this case")
    if image.status != ImageStatus.processed or not image.storage_key:
        raise Conflict(f"image {image.position + 1} was not analysed (status: {image.status}); "
                       "implants can be marked only on analysed films")
    return image


def check_mark(box, image: CaseImage) -> list:
    """BOX ([x0, y0, x1, y1] or four [x, y] corners, platform edge first) checked against IMAGE's size."""
    check_box(box)
    plain = not isinstance(box[0], list)
    points = [box[:2], box[2:]] if plain else box
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    if (min(xs) < 0 or min(ys) < 0 or (image.width and max(xs) > image.width)
            or (image.height and max(ys) > image.height)):
        raise Unprocessable(f"box: outside the {image.width}x{image.height} image")
    if max(xs) - min(xs) < MIN_MARK or max(ys) - min(ys) < MIN_MARK:
        raise Unprocessable(f"box: under {MIN_MARK} pixels on a side; draw around the whole implant")
    return [float(v) for v in box] if plain else [[float(x), float(y)] for x, y in box]


async def read_mark(image: CaseImage, box: list):
    """The fixture inside BOX on IMAGE, canonicalised, embedded and read like a located one (in a worker thread,
    one of the RAIOX_IDENTIFY_CONCURRENCY analysis slots). Call it outside a transaction: it takes a while."""
    import asyncio

    from raiox.catalog.identify import analyse_in_slot
    from raiox.kit.storage import get_storage
    from raiox.vision import get_embedder

    embedder = await asyncio.to_thread(get_embedder)
    data = await get_storage().get(image.storage_key)
    return embedder.model_id, (await analyse_in_slot(data, image.filename, embedder, [box]))[0]


async def add_fixture(session: AsyncSession, case_id: uuid.UUID, image_id: uuid.UUID, located, model_id: str, *,
                      actor: str) -> uuid.UUID:
    """Store LOCATED (`read_mark`) as a manual fixture of the film, searched in the catalog, and fuse the case's
    ranking again. The same box drawn twice (a double click) is stored once."""
    from raiox.intake import processing
    from raiox.kit.settings import get_settings

    case = await cases.get_or_404(session, case_id, for_update=True)
    image = await markable_image(session, case_id, image_id)  # checked again: the case may have moved meanwhile
    box = [[round(float(x), 2), round(float(y), 2)] for x, y in located.box]
    fixtures = await repository.image_fixtures(session, image.id)
    marked = [f for f in fixtures if f.manual]
    if (same := _same_mark(marked, box)) is not None:
        return same.id
    if len(marked) >= MAX_MARKS:
        raise Unprocessable(f"film {image.position + 1} has {len(marked)} marked implants already "
                            f"(at most {MAX_MARKS})")
    index = max((f.index for f in fixtures), default=-1) + 1
    fixture_id = await processing.store_fixture(session, image.id, index, located, model_id, get_settings().top_k,
                                                manual=True)
    await processing.replace_ranking(session, case.id)
    number = implant_numbers([*fixtures, SimpleNamespace(id=fixture_id, box=box, index=index)])[fixture_id]
    await audit(session, actor, "case.fixture_add", case.id, str(fixture_id), film=image.position + 1,
                implant=number, box=box, first=await _first(session, fixture_id))
    return fixture_id


async def _first(session: AsyncSession, fixture_id: uuid.UUID) -> str | None:
    """The fixture's first candidate as the audit log names it."""
    first = await repository.first_result(session, fixture_id)
    return system_label(first) if first else None


async def remove_fixture(session: AsyncSession, case_id: uuid.UUID, fixture_id: uuid.UUID, *, actor: str) -> None:
    """Drop a fixture (located or marked) that is not an implant of the case (a crown, a filling, a duplicate box)
    from the case's evidence, and fuse the ranking again. Reading the implants again (`raiox.review.reread`) leaves it
    removed: nothing is located anew while the case awaits review."""
    from raiox.intake import processing

    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.awaiting_review:
        raise not_awaiting(case, "changed")
    found = await repository.case_fixture(session, case.id, fixture_id)
    if found is None:
        raise NotFound("implant not found in this case")
    fixture, image = found
    number = implant_numbers(await repository.image_fixtures(session, image.id))[fixture.id]
    details = {"film": image.position + 1, "implant": number, "manual": fixture.manual, "box": fixture.box,
               "confidence": round(fixture.confidence, 4), "first": await _first(session, fixture.id)}
    await repository.delete_fixture(session, fixture.id)
    await processing.replace_ranking(session, case.id)
    await audit(session, actor, "case.fixture_remove", case.id, str(fixture.id), **details)
