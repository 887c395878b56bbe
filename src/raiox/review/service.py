"""Review decisions: approve (with the chosen system) or reject a case, notes, delivery resends.

Every decision locks the case row and checks its status, so double clicks and retries approve once:
an identical repeated decision returns the first one's result, a different one is a 409.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.delivery import service as delivery
from raiox.kit.errors import Conflict, Unprocessable
from raiox.models import AuditEntry, Case, CaseStatus, ImplantSystem, ReferenceEmbedding, ReferenceImage
from raiox.review import repository
from raiox.review.schemas import MESSAGE_MAX

DECIDED = {CaseStatus.approved, CaseStatus.rejected, CaseStatus.delivered, CaseStatus.delivery_failed}


def decision_view(case: Case) -> dict:
    return {
        "case_id": str(case.id),
        "status": case.status,
        "decision": "approved" if case.approved_system_id else "rejected",
        "system_id": case.approved_system_id,
        "message": case.review_message,
        "reviewed_by": case.reviewed_by,
        "reviewed_at": case.reviewed_at.isoformat() if case.reviewed_at else None,
    }


def _same(case: Case, system_id: str | None, message: str | None) -> bool:
    return (case.status in DECIDED and case.reviewed_at is not None and case.approved_system_id == system_id
            and (case.review_message or None) == (message or None))


def _not_awaiting(case: Case, verb: str) -> Conflict:
    label = cases.STATUS_LABELS_PT.get(case.status, case.status)
    return Conflict(f"case {case.id} is not awaiting review (status: {case.status} / {label}); "
                    f"only cases awaiting review can be {verb}")


async def audit(session: AsyncSession, actor: str, action: str, case_id: uuid.UUID | None = None,
                target: str | None = None, **details) -> None:
    session.add(AuditEntry(actor=actor, action=action, case_id=case_id, target=target, details=details))
    await session.flush()


async def _decide(session: AsyncSession, case: Case, to: CaseStatus, *, actor: str, system_id: str | None,
                  message: str | None) -> None:
    await cases.transition(session, case, to, actor=actor, reason=message)
    case.approved_system_id = system_id
    case.reviewed_by, case.reviewed_at, case.review_message = actor, datetime.now(UTC), message or None
    await session.flush()
    await delivery.enqueue(session, case, actor="system:review")


async def approve(session: AsyncSession, case_id: uuid.UUID, system_id: str, *, actor: str,
                  message: str | None = None, add_to_catalog: bool = False) -> dict:
    case = await cases.get_or_404(session, case_id, for_update=True)
    message = (message or "").strip() or None
    if case.status != CaseStatus.awaiting_review:
        if _same(case, system_id, message):
            return decision_view(case)
        raise _not_awaiting(case, "approved")
    system = await session.get(ImplantSystem, system_id)
    if system is None:
        raise Unprocessable(f"unknown implant system: {system_id!r}")
    await _decide(session, case, CaseStatus.approved, actor=actor, system_id=system.id, message=message)
    added = await add_case_references(session, case, system.id) if add_to_catalog else []
    await audit(session, actor, "case.approve", case.id, system.id, system=f"{system.manufacturer} {system.name}",
                message=message, references_added=len(added))
    return decision_view(case)


async def reject(session: AsyncSession, case_id: uuid.UUID, message: str, *, actor: str) -> dict:
    message = (message or "").strip()
    if not message:
        raise Unprocessable("a rejection needs a message to the dentist")
    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.awaiting_review:
        if _same(case, None, message):
            return decision_view(case)
        raise _not_awaiting(case, "rejected")
    await _decide(session, case, CaseStatus.rejected, actor=actor, system_id=None, message=message)
    await audit(session, actor, "case.reject", case.id, message=message)
    return decision_view(case)


async def add_note(session: AsyncSession, case_id: uuid.UUID, text: str, *, actor: str) -> None:
    text = (text or "").strip()
    if not text:
        raise Unprocessable("the note is empty")
    if len(text) > MESSAGE_MAX:
        raise Unprocessable(f"the note has {len(text)} characters; at most {MESSAGE_MAX}")
    case = await cases.get_or_404(session, case_id)
    await audit(session, actor, "case.note", case.id, note=text)


async def resend(session: AsyncSession, case_id: uuid.UUID, *, actor: str) -> None:
    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.delivery_failed:
        raise Conflict(f"case {case.id} is {case.status}; only a failed delivery can be resent")
    await delivery.enqueue(session, case, actor=actor, action="delivery.resend")


async def add_case_references(session: AsyncSession, case: Case, system_id: str) -> list[ReferenceImage]:
    """Each processed image of CASE becomes a reference of SYSTEM_ID, reusing its fixture embedding
    (same model, no re-embedding): the fixture whose results rank the system best, else the most
    confident one. Images already referenced for that system (same sha256) are skipped."""
    images = [i for i in await repository.case_images(session, case.id) if i.storage_key and i.sha256]
    fixtures = await repository.fixtures_with_results(session, [i.id for i in images])
    added = []
    for image in images:
        mine = [(f, r) for f, r in fixtures if f.case_image_id == image.id]
        if not mine or await repository.reference_by_sha(session, system_id, image.sha256):
            continue
        fixture = min(mine, key=lambda fr: (
            min((r.rank for r in fr[1] if r.system_id == system_id), default=99), -fr[0].confidence))[0]
        ref = ReferenceImage(system_id=system_id, storage_key=image.storage_key, sha256=image.sha256,
                             width=image.width, height=image.height, source="case",
                             origin=f"case:{case.id}/image:{image.id}", box=fixture.box)
        session.add(ref)
        await session.flush()
        await repository.add_embedding(session, ReferenceEmbedding(
            reference_image_id=ref.id, system_id=system_id, model_id=fixture.model_id, embedding=fixture.embedding))
        added.append(ref)
    return added
