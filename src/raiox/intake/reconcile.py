"""Submissions read from the Jotform API: verification of webhook deliveries and reconciliation.

Jotform documents no webhook retries, so `reconcile` lists the form's recent submissions
(`created_at:gt` now - RAIOX_RECONCILE_LOOKBACK_HOURS; Jotform's `created_at` carries no time zone: it is written,
and the filter's time read, in the account's, RAIOX_JOTFORM_TIMEZONE; a wrong setting only shifts the look-back
window by the difference) and ingests those without a case, through the same idempotent
`ingest` as the webhook: a webhook arriving at the same time still yields one case.

Items whose id or form id the webhook would refuse (`parse.SUBMISSION_ID`), or of another form than the configured
one (as `ingest_verified` checks), are skipped before any query (`reconcile_submission_skipped`, with the reason;
`outcome="submission_skipped"`).
Each submission is ingested in its own transaction: one the database refuses (a value the schema rejects, a
constraint it breaks) is rolled back alone, logged (`reconcile_submission_refused`) and counted
(`raiox_jobs_total{task="reconcile_submissions",outcome="submission_refused"}`), and the run goes on with the others;
having no case, it is tried again by the next run (while it is in the look-back window). A database that is down or
busy (connection lost, timeouts, deadlocks: psycopg's OperationalError) stops the run instead: the next one retries
every submission, and the job is counted as an error.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy.exc import DBAPIError

from raiox.intake import repository, service
from raiox.intake.parse import Submission, api_ids_problem, from_api
from raiox.kit.db import session_scope
from raiox.kit.errors import RaioxError
from raiox.kit.jotform import JotformAuthError, JotformClient, JotformNotFound, get_jotform_client
from raiox.kit.logging import get_logger
from raiox.kit.metrics import JOBS
from raiox.kit.settings import get_settings

log = get_logger(__name__)
PAGE = 200


async def ingest_verified(submission_id: str, form_id: str | None) -> None:
    """Re-read SUBMISSION_ID from the API; ingest the API's copy if it belongs to the configured form.

    Jotform's definite "no" for this submission is final (`_refuse`: logged, counted, the job ends without a retry):
    another form's submission, and a 401/403/404 while the key still reads the form's submissions (Jotform answers 401
    for a submission id that is not the account's: a forged or foreign one). A 401/403/404 that the form's own
    submission list gets too is ours (a wrong or revoked key, a key of another region, a wrong RAIOX_JOTFORM_API_URL),
    not the submission's: raised, so the job retries it like an outage and, once it gives up, the reconciliation
    ingests the submission after the setting is fixed. 429/5xx/timeouts raise too (retried)."""
    settings = get_settings()
    async with session_scope() as session:
        if await repository.case_id_for_submission(session, submission_id):
            return
    expected = settings.jotform_form_id or form_id
    async with get_jotform_client() as api:
        try:
            content = await api.get_submission(submission_id)
        except (JotformNotFound, JotformAuthError) as exc:
            if not await _api_works(api, expected, submission_id):
                raise
            return _refuse(submission_id, f"Jotform answered {exc.upstream_status} for it while the API reads the "
                           "form's submissions: no such submission in this account", exc.upstream_status)
    if expected and str(content.get("form_id")) != expected:
        return _refuse(submission_id, "of another form than RAIOX_JOTFORM_FORM_ID", None,
                       form_id=str(content.get("form_id"))[:60])
    sub = _parse(content)
    if sub is None:
        return
    async with session_scope() as session:
        result = await service.ingest(session, sub, source="webhook")
    log.info("submission_verified", submission_id=submission_id, case_id=str(result.case_id), created=result.created)


def _refuse(submission_id: str, reason: str, upstream_status: int | None, **extra) -> None:
    """A webhook delivery verification refuses for good: no case, no retry (the job ends); logged
    (`verification_refused`, warning) and counted (`raiox_jobs_total{task="ingest_submission",
    outcome="submission_refused"}`)."""
    JOBS.labels(task="ingest_submission", outcome="submission_refused").inc()
    log.warning("verification_refused", submission_id=submission_id, reason=reason, upstream_status=upstream_status,
                **extra)


async def _api_works(api: JotformClient, form_id: str | None, submission_id: str) -> bool:
    """Whether the API (its key, its URL) still reads FORM_ID's submissions, one call (`limit=1`): after a refusal
    of one submission, an API that works means Jotform refused that submission; one refused too (or no form to ask
    about) means our configuration is wrong: logged `jotform_api_refused` (error). An outage raises."""
    if form_id:
        try:
            await api.list_submissions(form_id, limit=1)
            return True
        except (JotformNotFound, JotformAuthError) as exc:
            log.error("jotform_api_refused", submission_id=submission_id, form_id=form_id, error=exc.message,
                      hint="check RAIOX_JOTFORM_API_KEY and RAIOX_JOTFORM_API_URL (the key's region); the verification "
                           "job retries, the reconciliation ingests the submission once the API answers")
    return False


async def reconcile(now: datetime | None = None) -> int:
    """Ingest recent submissions of the form that have no case yet; number of cases created."""
    settings = get_settings()
    if not settings.jotform_form_id or not settings.jotform_api_key:
        log.info("reconcile_skipped", reason="RAIOX_JOTFORM_FORM_ID or RAIOX_JOTFORM_API_KEY not set")
        return 0
    since = (now or datetime.now(UTC)) - timedelta(hours=settings.reconcile_lookback_hours)
    since = since.astimezone(ZoneInfo(settings.jotform_timezone))  # the clock Jotform compares `created_at` on
    created = 0
    async with get_jotform_client() as api:
        offset = 0
        while True:
            page = await api.list_submissions(settings.jotform_form_id, created_after=since, offset=offset, limit=PAGE)
            active = [s for s in page if s.get("status", "ACTIVE") == "ACTIVE"]
            created += await _ingest_missing(_ingestible(active, settings.jotform_form_id))
            if len(page) < PAGE:
                break
            offset += PAGE
    log.info("reconcile_done", form_id=settings.jotform_form_id, created=created)
    return created


def _parse(content: dict) -> Submission | None:
    """The API copy as a Submission; None (logged) when it cannot be read, so one unreadable submission
    does not stop the others from being ingested."""
    try:
        settings = get_settings()
        return from_api(content, field_map=settings.jotform_field_map, zone=ZoneInfo(settings.jotform_timezone))
    except RaioxError as exc:
        log.warning("submission_unreadable", submission_id=str(content.get("id")), reason=exc.message)
        return None


def refused_by_database(exc: BaseException) -> psycopg.DatabaseError | None:
    """The database's refusal of this one submission's rows (a value out of the schema's range, a constraint
    broken, a trigger's exception), psycopg's or wrapped by SQLAlchemy; None for anything else, the database being
    unreachable or busy (OperationalError: the other submissions would fail alike) included."""
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, psycopg.DatabaseError) and not isinstance(error, psycopg.OperationalError):
        return error
    return None


def _ingestible(items: list[dict], form_id: str) -> list[dict]:
    """ITEMS whose id the webhook would accept (1 to 40 digits) and whose `form_id` is FORM_ID (the configured form,
    as `ingest_verified` checks); the others are skipped before any query, logged (`reconcile_submission_skipped`,
    with the reason) and counted (`outcome="submission_skipped"`), on every run that lists them: no case can ever hold
    them, so they are not "tried again" as a refusal is."""
    kept = []
    for content in items:
        reason = api_ids_problem(content)
        if reason is None and str(content.get("form_id")) != form_id:
            reason = "of another form than RAIOX_JOTFORM_FORM_ID"
        if reason is None:
            kept.append(content)
            continue
        JOBS.labels(task="reconcile_submissions", outcome="submission_skipped").inc()
        log.warning("reconcile_submission_skipped", reason=reason, submission_id=str(content.get("id"))[:60],
                    form_id=str(content.get("form_id"))[:60])
    return kept


async def _ingest_missing(items: list[dict]) -> int:
    created = 0
    async with session_scope() as session:
        known = await repository.existing_submission_ids(session, [str(s.get("id")) for s in items])
    for content in items:
        if str(content.get("id")) in known:
            continue
        sub = _parse(content)
        if sub is None:
            continue
        try:
            async with session_scope() as session:  # its own transaction: a refusal rolls back this submission only
                result = await service.ingest(session, sub, source="reconcile")
        except Exception as exc:
            if (refusal := refused_by_database(exc)) is None:
                raise
            JOBS.labels(task="reconcile_submissions", outcome="submission_refused").inc()
            log.error("reconcile_submission_refused", submission_id=sub.submission_id,
                      sqlstate=refusal.sqlstate, error=type(refusal).__name__, detail=str(refusal).splitlines()[0])
            continue
        if result.created:
            created += 1
            log.info("reconcile_ingested", submission_id=sub.submission_id, case_id=str(result.case_id))
    return created
