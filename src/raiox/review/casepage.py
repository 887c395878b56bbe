"""What the case page shows: images with their fixtures and per-image candidates, the fused ranking,
confidence labels, the audit log and the delivery state.

Confidence labels come from the candidate's similarity (cosine, 0..1): `alta` from
RAIOX_CONFIDENCE_HIGH (default 0.85), `média` from RAIOX_CONFIDENCE_MEDIUM (default 0.70), `baixa`
below. The page warns when no candidate reaches `alta`.
"""

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository as cases_repo
from raiox.cases import service as cases
from raiox.delivery import repository as delivery_repo
from raiox.kit.settings import get_settings
from raiox.models import CaseImage, Fixture, ImplantSystem
from raiox.review import repository


def confidence(score: float) -> str:
    settings = get_settings()
    if score >= settings.confidence_high:
        return "high"
    return "medium" if score >= settings.confidence_medium else "low"


@dataclass
class Candidate:
    rank: int
    system: ImplantSystem
    score: float
    reference_id: uuid.UUID | None
    fixture_id: uuid.UUID | None = None  # the implant in the X-ray this candidate is compared with
    confidence: str = ""

    def __post_init__(self) -> None:
        self.confidence = confidence(self.score)


@dataclass
class ImageView:
    image: CaseImage
    fixtures: list[tuple[Fixture, list[Candidate]]] = field(default_factory=list)


async def build(session: AsyncSession, case_id: uuid.UUID) -> dict:
    case = await cases.get_or_404(session, case_id)
    images = await repository.case_images(session, case.id)
    fixtures = await repository.fixtures_with_results(session, [i.id for i in images])
    ranking = await repository.ranking(session, case.id)
    ids = {r.system_id for r in ranking} | {r.system_id for _f, rs in fixtures for r in rs}
    ids |= {case.approved_system_id} if case.approved_system_id else set()
    systems = await repository.systems_by_id(session, ids)
    best_ref: dict[str, tuple[float, uuid.UUID]] = {}
    best_fixture: dict[str, tuple[float, uuid.UUID]] = {}
    for fixture, results in fixtures:
        for r in results:
            if r.reference_image_id and r.score > best_ref.get(r.system_id, (-2.0, None))[0]:
                best_ref[r.system_id] = (r.score, r.reference_image_id)
            if r.score > best_fixture.get(r.system_id, (-2.0, None))[0]:
                best_fixture[r.system_id] = (r.score, fixture.id)
    fallback = await repository.first_reference(session, ids - set(best_ref))

    def ref(system_id: str) -> uuid.UUID | None:
        return best_ref[system_id][1] if system_id in best_ref else fallback.get(system_id)

    fused = [Candidate(r.rank, systems[r.system_id], r.score, ref(r.system_id), best_fixture.get(r.system_id, (0, None))[1])
             for r in ranking if r.system_id in systems]
    views = [ImageView(image) for image in images]
    by_id = {v.image.id: v for v in views}
    for fixture, results in fixtures:
        by_id[fixture.case_image_id].fixtures.append((fixture, [
            Candidate(r.rank, systems[r.system_id], r.score, r.reference_image_id or ref(r.system_id), fixture.id)
            for r in results if r.system_id in systems]))
    if not fused:  # no fused ranking stored: best score per system over all fixtures
        best: dict[str, Candidate] = {}
        for view in views:
            for _fixture, candidates in view.fixtures:
                for c in candidates:
                    if c.system.id not in best or c.score > best[c.system.id].score:
                        best[c.system.id] = Candidate(0, c.system, c.score, c.reference_id, c.fixture_id)
        fused = sorted(best.values(), key=lambda c: -c.score)
        for rank, c in enumerate(fused, start=1):
            c.rank = rank
    return {
        "case": case, "images": views, "fused": fused,
        "confident": any(c.confidence == "high" for c in fused),
        "approved_system": systems.get(case.approved_system_id) if case.approved_system_id else None,
        "approved_ref": ref(case.approved_system_id) if case.approved_system_id else None,
        "audit": await repository.audit_for_case(session, case.id),
        "events": await cases_repo.list_events(session, case.id),
        "delivery": await delivery_repo.get_delivery(session, case.id),
        "answers": flatten_answers(case.answers or {}),
        "thresholds": (get_settings().confidence_high, get_settings().confidence_medium),
    }


def _text(value: object) -> str:
    if isinstance(value, dict):
        return " ".join(_text(v) for v in value.values() if v not in (None, ""))
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def flatten_answers(answers: dict) -> list[tuple[str, str]]:
    """Form answers as (label, text) rows: API copies carry {text, answer}; rawRequest keys are `q<qid>_<name>`."""
    rows = []
    for key, value in answers.items():
        if isinstance(value, dict) and "answer" in value:
            label, text = str(value.get("text") or value.get("name") or key), _text(value.get("answer"))
        else:
            label, text = key.split("_", 1)[-1] if key.startswith("q") and "_" in key else key, _text(value)
        if text and not text.startswith(("http://", "https://")):
            rows.append((label, text[:2000]))
    return rows
