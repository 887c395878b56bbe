"""Case lifecycle: the allowed status transitions, each recorded with time and actor."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository
from raiox.kit.errors import Conflict, NotFound
from raiox.models import Case, CaseEvent, CaseStatus

S = CaseStatus
TRANSITIONS: dict[str, set[str]] = {
    S.received: {S.processing, S.failed},
    S.processing: {S.processing, S.awaiting_review, S.failed},
    S.awaiting_review: {S.approved, S.rejected, S.processing},
    S.approved: {S.delivered, S.delivery_failed},
    S.rejected: {S.delivered, S.delivery_failed},
    S.delivery_failed: {S.delivered, S.delivery_failed},
    S.failed: {S.processing, S.received, S.rejected},  # rejected: the dentist told why (no readable film)
    S.delivered: {S.approved, S.rejected},  # sent again on request (review.service.redeliver)
}

STATUS_LABELS_PT = {
    S.received: "Recebido",
    S.processing: "Processando",
    S.awaiting_review: "Aguardando revisão",
    S.approved: "Aprovado",
    S.rejected: "Rejeitado",
    S.delivered: "Entregue",
    S.delivery_failed: "Falha na entrega",
    S.failed: "Falhou",
}


async def get_or_404(session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False) -> Case:
    case = await repository.get_case(session, case_id, for_update=for_update)
    if case is None:
        raise NotFound(f"case {case_id} not found")
    return case


async def transition(session: AsyncSession, case: Case, to: CaseStatus, *, actor: str,
                     reason: str | None = None) -> None:
    """Move CASE to TO (409 when not allowed from its current status) and record who and why."""
    if to not in TRANSITIONS.get(case.status, set()):
        raise Conflict(f"case {case.id} is {case.status}; it cannot become {to}")
    await repository.add_event(
        session, CaseEvent(case_id=case.id, from_status=case.status, to_status=to, actor=actor, reason=reason)
    )
    case.status = to
    case.failure_reason = reason if to in (S.failed, S.delivery_failed) else None
    await session.flush()
