"""Intake background jobs (procrastinate; names are contracts):

- `process_case` {case_id}: the processing pipeline (raiox.intake.processing); retried with exponential
  backoff (RAIOX_JOB_RETRIES, RAIOX_JOB_RETRY_WAIT_S); after the last attempt the case becomes `failed`.
- `ingest_submission` {submission_id, form_id}: RAIOX_JOTFORM_VERIFY_SUBMISSIONS — re-read the
  submission from the Jotform API, check its form, ingest the API's copy.
- `reconcile_submissions` (periodic, every RAIOX_RECONCILE_EVERY_MINUTES): ingest recent submissions of
  RAIOX_JOTFORM_FORM_ID whose webhook never arrived.
- `refetch_images` {case_id}: films of a case awaiting review that could not be downloaded, fetched again on the
  operator's request (raiox.intake.refetch); retried like `process_case`, the case stays awaiting review.
- `requeue_stalled_jobs` (periodic, every minute): jobs left `doing` by a dead worker are retried; a case whose
  worker died on every attempt (a film that crashes the decoder, memory exhausted) becomes `failed` with that reason.
"""

import uuid

import procrastinate
from procrastinate.retry import RetryDecision

from raiox.intake import processing, reconcile, refetch
from raiox.kit import jobs
from raiox.kit.errors import NotFound
from raiox.kit.logging import get_logger
from raiox.kit.metrics import JOBS, counting
from raiox.kit.settings import get_settings

log = get_logger(__name__)
app = jobs.app


class SettingsRetry(procrastinate.BaseRetryStrategy):
    """Exponential backoff read from settings at failure time: wait_s ** attempt (3, 9, 27, ... s)."""

    def get_retry_decision(self, *, exception: BaseException, job) -> RetryDecision | None:
        settings = get_settings()
        if isinstance(exception, NotFound) or job.attempts >= settings.job_retries:
            return None
        return RetryDecision(retry_in={"seconds": settings.job_retry_wait_s ** (job.attempts + 1)})


def _cron_every(minutes: int) -> str:
    minutes = max(1, minutes)
    return f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(1, minutes // 60)} * * *"


def _reconcile_cron() -> str:
    try:
        return _cron_every(get_settings().reconcile_every_minutes)
    except Exception:  # settings are validated (with a clear message) when the app or worker starts
        return _cron_every(10)


@app.task(name="process_case", retry=SettingsRetry(), pass_context=True)
async def process_case(context: procrastinate.JobContext, case_id: str) -> None:
    attempt = context.job.attempts
    try:
        await processing.process_case(uuid.UUID(case_id), attempt=attempt)
    except processing.CaseMissing:
        log.warning("process_case_missing_case", case_id=case_id)
    except Exception as exc:  # a NotFound other than the case's (a stored object gone) is not retried: final now
        final = attempt >= get_settings().job_retries or isinstance(exc, NotFound)
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        log.warning("process_case_error", case_id=case_id, attempt=attempt + 1, final=final, error=reason)
        JOBS.labels(task="process_case", outcome="failed" if final else "retried").inc()
        if final:
            await processing.mark_failed(uuid.UUID(case_id),
                                         f"processing failed after {attempt + 1} attempts: {reason}")
        raise
    JOBS.labels(task="process_case", outcome="succeeded").inc()


@jobs.on_abandoned("process_case")
async def process_case_abandoned(args: dict, attempts: int) -> None:
    JOBS.labels(task="process_case", outcome="failed").inc()
    await processing.mark_failed(uuid.UUID(args["case_id"]), f"processing failed after {attempts} attempts: "
                                 "the worker stopped during each (killed, out of memory or crashed)")


@app.task(name="refetch_images", retry=SettingsRetry())
async def refetch_images(case_id: str) -> None:
    with counting("refetch_images"):
        await refetch.refetch(uuid.UUID(case_id))


@app.task(name="ingest_submission", retry=SettingsRetry())
async def ingest_submission(submission_id: str, form_id: str | None = None) -> None:
    with counting("ingest_submission"):
        await reconcile.ingest_verified(submission_id, form_id)


@app.periodic(cron=_reconcile_cron())
@app.task(name="reconcile_submissions", queueing_lock="reconcile_submissions")
async def reconcile_submissions(timestamp: int) -> None:
    with counting("reconcile_submissions"):
        await reconcile.reconcile()


@app.periodic(cron="* * * * *")
@app.task(name="requeue_stalled_jobs", queueing_lock="requeue_stalled_jobs")
async def requeue_stalled_jobs(timestamp: int) -> None:
    await jobs.requeue_stalled()
