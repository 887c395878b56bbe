"""Identify implant systems in one image: locate fixtures, embed them, search the catalog."""

import asyncio

import numpy as np

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog.lookalike import look_alike
from raiox.catalog.schemas import CandidateOut, DifferenceOut, IdentifyOut, ImplantOut
from raiox.catalog.search import search_fixture


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


async def identify(session: AsyncSession, data: bytes, filename: str | None, top_k: int, embedder=None) -> IdentifyOut:
    """Ranked candidates per implant found (`raiox identify`, `POST /identify`). Stores nothing."""
    from raiox.vision import analyze, get_embedder, read_image

    image = await asyncio.to_thread(read_image, data, filename)
    embedder = embedder or await asyncio.to_thread(get_embedder)
    fixtures = await asyncio.to_thread(analyze, image, embedder)
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
