"""Delivery jobs (procrastinate): `deliver_result` writes an approved/rejected case back to the dentist.

Channel failures (Jotform, SMTP) are handled inside the job (backoff, then `delivery_failed`); an
unexpected error (database down...) retries the whole job, which is safe because each channel records
its own completion. After the last attempt the case shows `delivery_failed` with the error, as it does when the
worker died during every attempt (`kit.jobs.requeue_stalled`).
"""

import uuid

from procrastinate import JobContext, RetryStrategy

from raiox.delivery import service
from raiox.kit.jobs import app, on_abandoned
from raiox.kit.metrics import JOBS

RETRY = RetryStrategy(max_attempts=4, exponential_wait=4)  # waits 4, 16, 64, 256 s


@app.task(name=service.TASK, queue="default", retry=RETRY, pass_context=True)
async def deliver_result(context: JobContext, case_id: str) -> str:
    try:
        outcome = await service.deliver(uuid.UUID(case_id))
    except Exception as exc:
        JOBS.labels(task=service.TASK, outcome="error").inc()
        if context.job.attempts >= RETRY.max_attempts:
            return await service.give_up(uuid.UUID(case_id), f"unexpected error: {type(exc).__name__}: {exc}")
        raise
    JOBS.labels(task=service.TASK, outcome=outcome).inc()
    return outcome


@on_abandoned(service.TASK)
async def deliver_result_abandoned(args: dict, attempts: int) -> None:
    """The worker died during every attempt: show `delivery_failed` (resend stays possible)."""
    JOBS.labels(task=service.TASK, outcome="error").inc()
    await service.give_up(uuid.UUID(args["case_id"]), f"unexpected error: the worker stopped during each of "
                          f"{attempts} attempts (killed, out of memory or crashed)")
