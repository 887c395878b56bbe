"""The one way an audit entry is written (`audit`): who, what, when and the details, in the caller's transaction, and
counted in `raiox_review_actions_total{action}`.

It lives here, below every domain, so that the review service, delivery and retention (which review imports) all
write through it; `raiox.review.service.audit` is this same function."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.metrics import REVIEW_ACTIONS
from raiox.models import AuditEntry

LIST_MAX = 50  # a list detail keeps its first LIST_MAX items (a demo catalog's import stored ~2,500: ~150 KB of JSON)


def capped(details: dict) -> dict:
    """DETAILS with every list longer than LIST_MAX cut to its first LIST_MAX items, its length as `<key>_count` and
    how many were left out as `<key>_left_out`: an entry stays a few KB however large the run (what a catalog run stored
    stays listed in the catalog itself, its reference images by sha256). A `<key>_count` the caller gives is kept."""
    out: dict = {}
    for key, value in details.items():
        if isinstance(value, list | tuple) and len(value) > LIST_MAX:
            out[key] = list(value[:LIST_MAX])
            out.setdefault(f"{key}_count", len(value))
            out[f"{key}_left_out"] = len(value) - LIST_MAX
        else:
            out[key] = value
    return out


async def audit(session: AsyncSession, actor: str, action: str, case_id: uuid.UUID | None = None,
                target: str | None = None, **details) -> int:
    """Add the entry ACTOR did ACTION (on CASE_ID / TARGET, with DETAILS, long lists `capped`) to SESSION's transaction
    and flush it; its id."""
    entry = AuditEntry(actor=actor, action=action, case_id=case_id, target=target, details=capped(details))
    session.add(entry)
    await session.flush()
    REVIEW_ACTIONS.labels(action).inc()
    return entry.id


async def bring_up_to_date(session: AsyncSession, entry_id: int, **details) -> None:
    """The details of entry ENTRY_ID, written by this same piece of work earlier, replaced by DETAILS in SESSION's
    transaction (long lists `capped`): a long run committed in parts (a catalog load's batches) is one entry that
    always says what its committed parts did. Besides this, an entry changes only by data retention: a purged case's
    free texts are cleared (`cases.retention`) and old sign-in entries lose the client's address
    (`review.auth.anonymise_addresses`). It is not counted again."""
    entry = await session.get(AuditEntry, entry_id)
    if entry is not None:
        entry.details = capped(details)
        await session.flush()
