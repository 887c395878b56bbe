"""The one way an audit entry is written (`audit`): who, what, when and the details, in the caller's transaction, and
counted in `raiox_review_actions_total{action}`.

It lives here, below every domain, so that the review service, delivery and retention (which review imports) all
write through it; `raiox.review.service.audit` is this same function."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.metrics import REVIEW_ACTIONS
from raiox.models import AuditEntry

LIST_MAX = 50  # a list detail keeps its first LIST_MAX items (a demo catalog's import stored ~2,500: ~150 KB of JSON)
# a text detail keeps its first STRING_MAX characters (an error message, a pasted text of 1 MB); never less than
# review.schemas.MESSAGE_MAX: an operator's note lives only in its `case.note` entry, and a message is kept whole
STRING_MAX = 5000
CUT = "…"  # ends a text item of a list (or a key) cut to STRING_MAX: no `<key>_chars` beside it to say so


def _item(value):
    """VALUE, an item of a list (or a mapping's key), capped as `capped` caps a detail: a long text cut, marked CUT."""
    if isinstance(value, str) and len(value) > STRING_MAX:
        return value[:STRING_MAX] + CUT
    if isinstance(value, dict):
        return capped(value)
    if isinstance(value, list | tuple):
        return [_item(item) for item in value]
    return value


def capped(details: dict) -> dict:
    """DETAILS with every list longer than LIST_MAX cut to its first LIST_MAX items, its length as `<key>_count` and
    how many were left out as `<key>_left_out`, and every text longer than STRING_MAX cut to its first STRING_MAX
    characters, its length as `<key>_chars`: an entry stays a few KB however large the run (what a catalog run stored
    stays listed in the catalog itself, its reference images by sha256) or the text (an error message, a pasted note).
    Mappings inside are capped the same way, texts inside lists cut and ended with CUT. A `<key>_count` or
    `<key>_chars` the caller gives is kept."""
    out: dict = {}
    for key, value in details.items():
        key = _item(key)
        if isinstance(value, list | tuple) and len(value) > LIST_MAX:
            out[key] = _item(value[:LIST_MAX])
            out.setdefault(f"{key}_count", len(value))
            out[f"{key}_left_out"] = len(value) - LIST_MAX
        elif isinstance(value, str) and len(value) > STRING_MAX:
            out[key] = value[:STRING_MAX]
            out.setdefault(f"{key}_chars", len(value))
        else:
            out[key] = _item(value)
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
    (`review.address_retention.anonymise_addresses`). It is not counted again."""
    entry = await session.get(AuditEntry, entry_id)
    if entry is not None:
        entry.details = capped(details)
        await session.flush()
