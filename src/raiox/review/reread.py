"""Reading a case's implants again with the current models, after `RAIOX_EMBEDDER` (or a reader) changed while the
case awaited review: until then its implants were embedded by the old model and any implant marked since by the new
one, so the case's ranking fused scores of two models. Each implant keeps its box, number, confidence and manual
flag; its crop is embedded and read again, searched in the catalog again, and the case's ranking fused again.
Nothing is located anew, so implants the operator removed stay removed and marks stay. Only while the case awaits
review; audited (`case.reread`).

A caller that owns the session lists the `films`, commits (no transaction nor pool connection is held through the
analysis), `read`s them, `store`s the new reading and commits."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository as case_repository
from raiox.cases import service as cases
from raiox.kit.errors import Conflict
from raiox.kit.logging import get_logger
from raiox.models import CaseImage, CaseStatus, Fixture, ImageStatus
from raiox.review import repository
from raiox.review.service import audit, not_awaiting

log = get_logger(__name__)


class CatalogMissing(Conflict):
    """The catalog has no vectors of the current model (`raiox catalog reindex` not run): reading the implants again
    would leave them without candidates, so nothing is changed."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"the catalog has no vectors of {model_id}: run `raiox catalog reindex` with this model "
                         "first; the case was left as it was")
        self.model_id = model_id


@dataclass
class Film:
    """An analysed film of the case and its implants, as read before the new reading."""

    image: CaseImage
    fixtures: list[Fixture]


@dataclass
class Reading:
    """The implants of one film read by the current models (`raiox.vision.FixtureEmbedding`, in FIXTURES' order)."""

    film: Film
    model_id: str
    located: list


async def current_model() -> str:
    """The model id of the current embedder (`RAIOX_EMBEDDER`; loaded in a worker thread the first time)."""
    import asyncio

    from raiox.vision import get_embedder

    return (await asyncio.to_thread(get_embedder)).model_id


async def films(session: AsyncSession, case_id: uuid.UUID) -> list[Film]:
    """The analysed films of a case awaiting review that show implants. 404 for an unknown case; 409 when it is not
    awaiting review, shows no implant, or the catalog has no vectors of the current model (`CatalogMissing`: every
    result would be empty), all before anything is read."""
    from raiox.catalog.repository import has_embeddings

    case = await cases.get_or_404(session, case_id)
    if case.status != CaseStatus.awaiting_review:
        raise not_awaiting(case, "read again")
    fixtures = await case_repository.case_fixtures(session, case_id)
    images = [i for i in await case_repository.case_images(session, case_id)
              if i.status == ImageStatus.processed and i.storage_key]
    found = [film for i in images if (film := Film(i, [f for f in fixtures if f.case_image_id == i.id])).fixtures]
    if not found:
        raise Conflict(f"case {case_id} shows no implant to read again; mark one on a film first")
    model_id = await current_model()
    if not (await has_embeddings(session, model_id))[1]:
        raise CatalogMissing(model_id)
    return found


async def read(found: list[Film]) -> list[Reading]:
    """Every film's implants read again by the current models, each from its own box (in a worker thread, one of
    the RAIOX_IDENTIFY_CONCURRENCY analysis slots). Call it outside a transaction: it takes a while."""
    import asyncio

    from raiox.catalog.identify import analyse_in_slot
    from raiox.kit.storage import get_storage
    from raiox.vision import get_embedder

    embedder = await asyncio.to_thread(get_embedder)
    readings = []
    for film in found:
        data = await get_storage().get(film.image.storage_key)
        located = await analyse_in_slot(data, film.image.filename, embedder, [f.box for f in film.fixtures],
                                        checked=False)
        readings.append(Reading(film, embedder.model_id, located))
    return readings


async def store(session: AsyncSession, case_id: uuid.UUID, readings: list[Reading], *, actor: str) -> int:
    """Replace each implant's reading and results, fuse the case's ranking again, audit. Implants removed while
    they were read are skipped; the count of implants read again is returned."""
    from raiox.intake import processing
    from raiox.kit.settings import get_settings

    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.awaiting_review:
        raise not_awaiting(case, "read again")
    present = await repository.case_fixture_models(session, case.id)  # as stored now, after any earlier reading
    before, count = set(), 0
    for reading in readings:
        for fixture, located in zip(reading.film.fixtures, reading.located, strict=True):
            if fixture.id in present:
                before.add(present[fixture.id])
                await processing.reread_fixture(session, fixture.id, located, reading.model_id, get_settings().top_k)
                count += 1
    if not count:
        raise Conflict(f"case {case.id} has no implant to read again; mark one on a film first")
    await processing.replace_ranking(session, case.id)
    model_id = readings[0].model_id
    await audit(session, actor, "case.reread", case.id, None, implants=count, models_before=sorted(before),
                model=model_id)
    log.info("case_reread", case_id=str(case.id), implants=count, models_before=sorted(before), model=model_id)
    return count
