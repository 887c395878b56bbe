"""The one way an audit entry is written (`audit`): who, what, when and the details, in the caller's transaction, and
counted in `raiox_review_actions_total{action}`.

It lives here, below every domain, so that the review service, delivery and retention (which review imports) all
write through it; `raiox.review.service.audit` is this same function."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.metrics import REVIEW_ACTIONS
from raiox.models import AuditEntry


async def audit(session: AsyncSession, actor: str, action: str, case_id: uuid.UUID | None = None,
                target: str | None = None, **details) -> None:
    """Add the entry ACTOR did ACTION (on CASE_ID / TARGET, with DETAILS) to SESSION's transaction and flush it."""
    session.add(AuditEntry(actor=actor, action=action, case_id=case_id, target=target, details=details))
    await session.flush()
    REVIEW_ACTIONS.labels(action).inc()
