"""Read models of cases for the API (and the admin panel): pages of cases, one case in full."""

import base64
import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository
from raiox.cases.schemas import (CandidateOut, CaseDetail, CasePage, CaseSummary, EventOut, ImageOut, ImplantOut,
                                 RankingOut)
from raiox.cases.numbering import implant_numbers
from raiox.cases.service import STATUS_LABELS_PT, get_or_404
from raiox.catalog.identify import connection_out, stored_features_out
from raiox.kit.errors import BadRequest, NotFound
from raiox.models import Case, CaseStatus


def encode_cursor(case: Case) -> str:
    raw = f"{case.created_at.isoformat()}|{case.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, case_id = raw.partition("|")
        return datetime.fromisoformat(when), uuid.UUID(case_id)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid cursor: pass the `next` value of the previous page unchanged") from None


def summary(case: Case) -> dict:
    return {
        "id": case.id, "jotform_submission_id": case.jotform_submission_id, "status": case.status,
        "status_label": STATUS_LABELS_PT.get(case.status, case.status), "client_name": case.client_name,
        "client_email": case.client_email, "source": case.source, "failure_reason": case.failure_reason,
        "approved_system_id": case.approved_system_id,
        "other_system_ids": list(case.other_system_ids or []), "purged_at": case.purged_at,
        "submitted_at": case.submitted_at,
        "created_at": case.created_at, "updated_at": case.updated_at,
    }


async def case_page(session: AsyncSession, *, status: str | None, submission_id: str | None, limit: int,
                    cursor: str | None) -> CasePage:
    if status and status not in set(CaseStatus):
        raise BadRequest(f"unknown status {status!r}; one of: {', '.join(CaseStatus)}")
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_cases(session, status=status, submission_id=submission_id, limit=limit + 1,
                                       after=after)
    items, more = rows[:limit], len(rows) > limit
    return CasePage(items=[CaseSummary(**summary(c)) for c in items],
                    next=encode_cursor(items[-1]) if more else None)


async def case_detail(session: AsyncSession, case_id: uuid.UUID) -> CaseDetail:
    case = await get_or_404(session, case_id)
    candidates = defaultdict(list)
    for r in await repository.case_results(session, case_id):
        candidates[r.fixture_id].append(CandidateOut(system=r.system_id, manufacturer=r.manufacturer, name=r.name,
                                                     score=r.score, rank=r.rank,
                                                     reference_image_id=r.reference_image_id))
    films = defaultdict(list)
    for f in await repository.case_fixtures(session, case_id):
        films[f.case_image_id].append(f)
    implants, mapped = defaultdict(list), case.implant_systems or {}
    for image_id, fixtures in films.items():
        numbers = implant_numbers(fixtures)
        for f in sorted(fixtures, key=lambda f: numbers[f.id]):
            implants[image_id].append(ImplantOut(
                box=f.box, confidence=f.confidence, candidates=candidates[f.id], id=f.id, index=f.index,
                number=numbers[f.id], manual=f.manual, model_id=f.model_id, connection=connection_out(f.connection),
                features=stored_features_out(f.features), approved_system_id=mapped.get(str(f.id)),
                thread_turns=None if f.thread_turns is None else round(f.thread_turns, 2)))
    images = [
        ImageOut(id=i.id, position=i.position, question=i.question, filename=i.filename, status=i.status,
                 error=i.error, sha256=i.sha256, size_bytes=i.size_bytes, content_type=i.content_type,
                 width=i.width, height=i.height, implants=implants[i.id])
        for i in await repository.case_images(session, case_id)
    ]
    history = [EventOut(from_status=e.from_status, to_status=e.to_status, actor=e.actor, reason=e.reason,
                        at=e.created_at) for e in await repository.list_events(session, case_id)]
    return CaseDetail(**summary(case), form_id=case.form_id, client_phone=case.client_phone, notes=case.notes,
                      tooth=case.tooth,
                      fields=(case.payload or {}).get("fields", {}), reviewed_by=case.reviewed_by,
                      reviewed_at=case.reviewed_at, review_message=case.review_message, images=images,
                      ranking=await ranking(session, case_id), history=history)


async def ranking(session: AsyncSession, case_id: uuid.UUID) -> list[RankingOut]:
    """The case's candidate systems fused over all its implants, best first."""
    return [RankingOut(rank=r.rank, system=r.system_id, manufacturer=r.manufacturer, name=r.name, score=r.score,
                       evidence=r.evidence or {}) for r in await repository.case_ranking(session, case_id)]


async def implant(session: AsyncSession, case_id: uuid.UUID, fixture_id: uuid.UUID) -> ImplantOut:
    """One implant of the case as the case detail shows it."""
    for image in (await case_detail(session, case_id)).images:
        for found in image.implants:
            if found.id == fixture_id:
                return found
    raise NotFound("implant not found in this case")
