"""Intake: one case per Jotform submission, its images and its `process_case` job, in one transaction.

The webhook and the reconciliation job both go through `ingest`, so a submission delivered twice,
concurrently, or found again by reconciliation yields exactly one case and one processing job.
"""

import uuid
from dataclasses import dataclass

from psycopg import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases.repository import add_event
from raiox.cases.service import transition
from raiox.intake import repository
from raiox.intake.parse import TOOTH_MAX, Submission, clipped
from raiox.kit.errors import Conflict
from raiox.kit.jobs import defer_in_session
from raiox.kit.logging import get_logger
from raiox.models import Case, CaseEvent, CaseStatus

log = get_logger(__name__)
PROCESS_TASK = "process_case"
INGEST_TASK = "ingest_submission"
REFETCH_TASK = "refetch_images"


@dataclass
class Ingested:
    case_id: uuid.UUID
    created: bool
    status: str = CaseStatus.received.value  # the case's status now (a duplicate's may be far along: delivered...)


def _case_values(sub: Submission, source: str) -> dict:
    return {
        "jotform_submission_id": sub.submission_id,
        "form_id": sub.form_id,
        "source": source,
        "client_name": (sub.client_name or "")[:300] or None,
        "client_email": (sub.client_email or "")[:320] or None,
        "client_phone": (sub.client_phone or "")[:80] or None,
        "notes": sub.notes,
        "tooth": clipped(sub.tooth, TOOTH_MAX),
        "answers": sub.answers,
        "payload": {**sub.payload, "fields": sub.fields},
        "status": CaseStatus.received,
        "submitted_at": sub.submitted_at,
    }


async def enqueue_processing(session: AsyncSession, case_id: uuid.UUID) -> int:
    """One `process_case` job, serialised per case by its lock (a retry never runs beside a stalled one)."""
    return await defer_in_session(session, PROCESS_TASK, {"case_id": str(case_id)}, lock=f"case:{case_id}")


async def ingest(session: AsyncSession, sub: Submission, *, source: str = "webhook") -> Ingested:
    """`ingest_on` inside an SQLAlchemy session's transaction (reconciliation, verified submissions)."""
    return await ingest_on(await repository.driver_connection(session), sub, source=source)


async def ingest_on(conn: AsyncConnection, sub: Submission, *, source: str = "webhook") -> Ingested:
    """Create the case, its pending images, its history entry and its processing job, atomically
    (idempotent on submissionID: an existing case is returned, nothing new is written)."""
    uploads = [(u.question[:200], u.url, u.filename) for u in sub.uploads]
    case_id = await repository.create_case(conn, _case_values(sub, source), uploads, task=PROCESS_TASK,
                                           actor=f"jotform:{source}", reason=f"{len(uploads)} file(s) submitted")
    if case_id is None:
        existing = await repository.find_case(conn, sub.submission_id)
        assert existing is not None, "ON CONFLICT without a conflicting row"
        return Ingested(existing[0], created=False, status=existing[1])
    if sub.ignored:  # once per submission: it is parsed again on each delivery, verification and reconciliation
        log.info("upload_fields_ignored", submission_id=sub.submission_id, case_id=str(case_id), fields=sub.ignored)
    return Ingested(case_id, created=True)


async def enqueue_verification(conn: AsyncConnection, submission_id: str, form_id: str | None) -> int:
    """RAIOX_JOTFORM_VERIFY_SUBMISSIONS: the job re-reads the submission from the API before ingesting."""
    return await repository.defer_job(conn, INGEST_TASK, {"submission_id": submission_id, "form_id": form_id})


async def retry_case(session: AsyncSession, case: Case, *, actor: str) -> int:
    """Re-enqueue a `failed` case (admin panel / API retry): failed images are downloaded again. A case awaiting
    review with films that could not be downloaded gets those films fetched again (`intake.refetch`), the rest of
    the case (and the reviewer's work on it) as it is. The job's id. Audited `case.retry` (`films_only` for a
    refetch), whoever asked (panel or API)."""
    from raiox.intake import refetch
    from raiox.review.service import audit

    if case.status == CaseStatus.awaiting_review:
        if not any(i.status in refetch.TO_REFETCH for i in await repository.list_images(session, case.id)):
            raise Conflict(f"case {case.id} awaits review and every film was downloaded and analysed: nothing to retry")
        await add_event(session, CaseEvent(case_id=case.id, from_status=case.status, to_status=case.status,
                                           actor=actor, reason="films not downloaded or not analysed requested again"))
        await audit(session, actor, "case.retry", case.id, films_only=True)
        return await defer_in_session(session, REFETCH_TASK, {"case_id": str(case.id)}, lock=f"case:{case.id}")
    if case.status != CaseStatus.failed:
        raise Conflict(f"only failed cases, or cases awaiting review with films that could not be downloaded or were "
                       f"not analysed, can be retried; case {case.id} is {case.status}")
    await transition(session, case, CaseStatus.received, actor=actor, reason="retry requested")
    await repository.reset_failed_images(session, case.id)
    await audit(session, actor, "case.retry", case.id)
    return await enqueue_processing(session, case.id)
