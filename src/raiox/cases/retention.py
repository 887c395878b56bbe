"""Data retention (LGPD): a closed case's films, implants and personal data are removed after RAIOX_RETENTION_DAYS
(the daily `purge_expired_cases` job) or on request (`raiox cases purge`).

What stays is the case row without anything personal: its Jotform submission id (a re-sent webhook must never
recreate the case), status, decision (systems), ranking and dates, for the statistics, the kind of failure of a failed
case without its detail (file names, upload addresses and error texts name patients), and the audit trail of who did
what (its free texts cleared). Stored objects are deleted before the database change is committed: a storage outage
leaves the case unpurged (the next run tries again), never a purged case whose films survive. An object still used by
another case's image, or by a catalog reference added from a case before "add to catalog" stored its own copy without
the film's metadata (`raiox.review.service.add_case_references`; until `raiox catalog scrub-references` gives it one),
stays.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import repository
from raiox.cases.service import get_or_404
from raiox.delivery.repository import delivery_in_flight
from raiox.kit.audit import audit
from raiox.kit.errors import Conflict
from raiox.kit.logging import get_logger
from raiox.kit.storage import get_storage
from raiox.models import Case, CaseStatus

log = get_logger(__name__)
CLOSED = {CaseStatus.delivered.value, CaseStatus.failed.value}  # nothing left to do on them
BATCH = 100
DETAIL = re.compile(r": | \(")  # where a recorded reason's detail starts ("no usable image (…)", "jotform: …")
REMOVED = "details removed"


async def refusal(session: AsyncSession, case: Case) -> str | None:
    """Why CASE cannot be purged now (None: it can)."""
    if case.status not in CLOSED:
        return f"case {case.id} is {case.status}; only closed cases (delivered, or failed) are purged"
    if await delivery_in_flight(session, case.id):  # it would send what is being removed
        return f"a delivery of case {case.id} is in progress; purge it after that ends"
    return None


async def purge(session: AsyncSession, case_id: uuid.UUID, *, actor: str) -> int:
    """Remove CASE_ID's films and personal data (a closed case; Conflict otherwise); the number of stored objects
    deleted. Repeating it is harmless (and clears again any free text added since)."""
    case = await get_or_404(session, case_id, for_update=True)
    if case.purged_at is not None:
        case.failure_reason = without_detail(case.failure_reason)
        await repository.clear_case_texts(session, case.id)
        return 0
    if (why := await refusal(session, case)) is not None:
        raise Conflict(why)
    keys = {i.storage_key for i in await repository.case_images(session, case.id) if i.storage_key}
    await repository.delete_images(session, case.id)
    gone = sorted(keys - await repository.keys_in_use(session, keys))
    _forget(case)
    await repository.clear_case_texts(session, case.id)
    await audit(session, actor, "case.purge", case.id, str(case.id), objects_deleted=len(gone),
                objects_kept=len(keys) - len(gone))
    storage = get_storage()
    for key in gone:  # before the commit: a storage outage leaves the case unpurged, to try again
        await storage.delete(key)
    log.info("case_purged", case_id=str(case.id), objects_deleted=len(gone))
    return len(gone)


def _forget(case: Case) -> None:
    case.client_name = case.client_email = case.client_phone = case.notes = case.tooth = case.review_message = None
    case.answers, case.payload, case.implant_systems = {}, {}, {}
    case.failure_reason = without_detail(case.failure_reason)
    case.purged_at = datetime.now(UTC)


def without_detail(reason: str | None) -> str | None:
    """A recorded failure reason's kind, its detail replaced ("no usable image (details removed)")."""
    if reason is None or (start := DETAIL.search(reason)) is None:
        return reason
    opened = start.group() == " ("
    return f"{reason[:start.end()]}{REMOVED}{')' if opened else ''}"


async def expired(session: AsyncSession, days: int, limit: int = BATCH) -> list[uuid.UUID]:
    """Closed cases last changed more than DAYS ago and not purged yet, oldest first."""
    return await repository.expired_case_ids(session, CLOSED, datetime.now(UTC) - timedelta(days=days), limit)
