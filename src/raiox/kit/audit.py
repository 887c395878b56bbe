"""The one way an audit entry is written (`audit`): who, what, when and the details, in the caller's transaction, and
counted in `raiox_review_actions_total{action}`.

It lives here, below every domain, so that the review service, delivery and retention (which review imports) all
write through it; `raiox.review.service.audit` is this same function."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.metrics import REVIEW_ACTIONS
from raiox.models import AuditEntry


async def audit(session: AsyncSession, actor: str, action: str, case_id: uuid.UUID | None = None,
                target: str | None = None, **details) -> int:
    """Add the entry ACTOR did ACTION (on CASE_ID / TARGET, with DETAILS) to SESSION's transaction and flush it; its
    id."""
    entry = AuditEntry(actor=actor, action=action, case_id=case_id, target=target, details=details)
    session.add(entry)
    await session.flush()
    REVIEW_ACTIONS.labels(action).inc()
    return entry.id


async def bring_up_to_date(session: AsyncSession, entry_id: int, **details) -> None:
    """The details of entry ENTRY_ID, written by this same piece of work earlier, replaced by DETAILS in SESSION's
    transaction: a long run committed in parts (a catalog load's batches) is one entry that always says what its
    committed parts did. Besides this, an entry changes only by data retention: a purged case's free texts are cleared
    (`cases.retention`) and old sign-in entries lose the client's address (`review.auth.anonymise_addresses`).
    It is not counted again."""
    entry = await session.get(AuditEntry, entry_id)
    if entry is not None:
        entry.details = details
        await session.flush()
