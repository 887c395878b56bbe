"""A job whose worker died during it (killed, out of memory, a crash in native decoding code) is retried after a
backoff; once it has died on every attempt its task allows, it is given up and its case says why, instead of
killing workers for ever with the case stuck in `processing`."""

from datetime import UTC, datetime, timedelta

from review_helpers import add_case, add_system
from sqlalchemy import text

from raiox.kit import jobs
from raiox.kit.db import session_scope
from raiox.models import Case, CaseStatus
from raiox.review import service as review
from raiox.review.reasons import reason_text


async def _stall(task: str, case_id, attempts: int) -> None:
    """The job as a dead worker leaves it: `doing`, after ATTEMPTS earlier runs."""
    async with session_scope() as session:
        await session.execute(text("UPDATE procrastinate_jobs SET status = 'doing', attempts = :a, worker_id = NULL "
                                   "WHERE task_name = :t AND args->>'case_id' = :c"),
                              {"a": attempts, "t": task, "c": str(case_id)})


async def _job(task: str, case_id):
    async with session_scope() as session:
        return (await session.execute(text("SELECT status, scheduled_at FROM procrastinate_jobs WHERE task_name = :t "
                                           "AND args->>'case_id' = :c"), {"t": task, "c": str(case_id)})).one()


async def test_a_job_whose_worker_died_on_every_attempt_is_given_up_and_its_case_says_why(committed, configure):
    configure(JOB_RETRIES="2", JOB_RETRY_WAIT_S="3")
    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        dying = await add_case(session, status=CaseStatus.processing)
        again = await add_case(session, status=CaseStatus.processing)
        for case in (dying, again):
            await jobs.defer_in_session(session, "process_case", {"case_id": str(case.id)})
        approved = await add_case(session, candidates=[("neo-cm", 0.9)])
        await review.approve(session, approved.id, "neo-cm", actor="user:rev@example.com")
    await _stall("process_case", dying.id, attempts=2)  # its third run died too: RAIOX_JOB_RETRIES=2 spent
    await _stall("process_case", again.id, attempts=1)
    await _stall("deliver_result", approved.id, attempts=4)  # the delivery task's own limit (4 retries) spent
    async with jobs.app.open_async():
        assert await jobs.requeue_stalled() == 3
        assert await jobs.requeue_stalled() == 0  # nothing is left `doing`: no loop
    async with session_scope() as session:
        failed, waiting, undelivered = [await session.get(Case, c.id) for c in (dying, again, approved)]
    assert failed.status == CaseStatus.failed
    assert failed.failure_reason.startswith("processing failed after 3 attempts: the worker stopped during each")
    assert (await _job("process_case", dying.id)).status == "failed"
    assert waiting.status == CaseStatus.processing  # retried, after the backoff (3 ** 2 s)
    retried = await _job("process_case", again.id)
    assert retried.status == "todo" and retried.scheduled_at > datetime.now(UTC) + timedelta(seconds=5)
    assert undelivered.status == CaseStatus.delivery_failed
    assert (await _job("deliver_result", approved.id)).status == "failed"
    assert "the worker stopped during each of 5 attempts" in undelivered.failure_reason
    assert reason_text(undelivered.failure_reason, "pt_BR").startswith("a entrega do resultado falhou")
