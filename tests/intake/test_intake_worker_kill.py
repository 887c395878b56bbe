"""A worker killed (-9) in the middle of a job loses nothing: another worker finishes the case once."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from fakes.jotform import FORM_ID, webhook_request
from raiox.kit.db import session_scope
from raiox.models import Case, CaseEvent, CaseImage, Fixture

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def start_worker(log_path: Path) -> subprocess.Popen:
    """A `raiox worker` on the tests' database. A stalled job is retried at once (RAIOX_JOB_RETRY_WAIT_S=0: the next
    worker's `requeue_stalled` makes it due before its first fetch; the backoff's 3 s then waited for its 5 s poll)."""
    env = dict(os.environ, PYTHONPATH=SRC, RAIOX_STALLED_JOB_SECONDS="3", RAIOX_JOB_RETRY_WAIT_S="0",
               OMP_NUM_THREADS="1", RAIOX_LOG_LEVEL="DEBUG")
    handle = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", "raiox", "worker", "--concurrency", "1"], env=env,
                            stdout=handle, stderr=subprocess.STDOUT)


async def wait_for(predicate, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await predicate():
            return result
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


async def job_stalled():
    """Until the job its worker left `doing` is stalled, as procrastinate's `get_stalled_jobs` finds it: no heartbeat
    of that worker for RAIOX_STALLED_JOB_SECONDS (3 s, on PostgreSQL's clock), or no such worker any more. The next
    worker's `requeue_stalled` then takes it back (a fixed 3.5 s sleep waited up to a heartbeat interval, 1 s, more)."""
    async def stalled():
        async with session_scope() as session:
            return (await session.execute(text(
                "SELECT count(*) FROM procrastinate_jobs job LEFT JOIN procrastinate_workers worker"
                " ON worker.id = job.worker_id WHERE job.status = 'doing' AND job.task_name = 'process_case'"
                " AND (worker.id IS NULL OR worker.last_heartbeat < now() - interval '3 seconds')"))).scalar_one()
    await wait_for(stalled, 30, "the dead worker's job to be stalled (RAIOX_STALLED_JOB_SECONDS)")


@pytest.mark.slow
async def test_worker_killed_mid_job_then_case_completes_exactly_once(api, jotform, catalog, scene_pngs, tmp_path):
    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("lento.png", scene_pngs[1])]})
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    case_id = response.json()["case_id"]
    slow = f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/lento.png"
    jotform.delay(slow, 120)
    log_path = tmp_path / "worker.log"
    first = start_worker(log_path)
    try:
        async def slow_requested():
            return any(r.path == slow for r in jotform.requests)
        await wait_for(slow_requested, 90, "the worker to start downloading the slow file")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    async with session_scope() as session:
        assert (await session.get(Case, case_id)).status == "processing"
        job_status = (await session.execute(text("SELECT status FROM procrastinate_jobs WHERE task_name ="
                                                 " 'process_case'"))).scalar_one()
        assert job_status == "doing"  # left behind by the dead worker
    jotform.state.delays.clear()
    await job_stalled()  # the dead worker's heartbeat older than RAIOX_STALLED_JOB_SECONDS
    second = start_worker(log_path)
    try:
        async def done():
            async with session_scope() as session:
                return (await session.get(Case, case_id)).status == "awaiting_review"
        await wait_for(done, 120, "the second worker to finish the case")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
    async with session_scope() as session:
        events = (await session.execute(select(CaseEvent.to_status).where(CaseEvent.case_id == case_id))).scalars()
        statuses = list(events)
        images = (await session.execute(select(CaseImage).where(CaseImage.case_id == case_id))).scalars().all()
        indexes = (await session.execute(select(Fixture.case_image_id, Fixture.index).join(CaseImage)
                                         .where(CaseImage.case_id == case_id))).all()
        cases = (await session.execute(select(func.count()).select_from(Case))).scalar_one()
        job = (await session.execute(text("SELECT status, attempts FROM procrastinate_jobs WHERE task_name ="
                                          " 'process_case'"))).one()
    assert statuses.count("awaiting_review") == 1 and cases == 1
    assert sorted(i.status for i in images) == ["processed", "processed"]
    assert len(indexes) == len(set(indexes)) >= 2  # each image's fixtures once
    assert job.status == "succeeded" and job.attempts == 2  # the killed run and the one that finished
    assert statuses.count("processing") == 2
    logged = log_path.read_text()
    assert "stalled_job_requeued" in logged
    assert "test-jotform-key" not in logged and "test-webhook-secret" not in logged


async def _worker_downloading_slowly(api, jotform, scene_pngs, log_path: Path, seconds: float):
    """A case whose second film takes SECONDS to download, and a worker at work on it: (case id, worker)."""
    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("lento.png", scene_pngs[1])]})
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    slow = f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/lento.png"
    jotform.delay(slow, seconds)
    worker = start_worker(log_path)

    async def slow_requested():
        return any(r.path == slow for r in jotform.requests)
    try:
        await wait_for(slow_requested, 90, "the worker to start downloading the slow file")
    except BaseException:
        worker.kill()
        raise
    return response.json()["case_id"], worker


async def _case_and_job(case_id):
    async with session_scope() as session:
        status = (await session.get(Case, case_id)).status
        job = (await session.execute(text("SELECT status, attempts FROM procrastinate_jobs WHERE task_name ="
                                          " 'process_case'"))).one()
    return status, job


@pytest.mark.slow
async def test_sigterm_mid_job_lets_the_job_finish_then_the_worker_exits_0(api, jotform, catalog, scene_pngs,
                                                                            tmp_path):
    """systemd's stop (SIGTERM) on a worker at work: it fetches no more jobs, finishes the one running, exits 0."""
    log_path = tmp_path / "worker.log"
    # the signal goes as soon as the slow download is seen (every 0.05 s): 2 s leave the stop ample time to come first
    case_id, worker = await _worker_downloading_slowly(api, jotform, scene_pngs, log_path, 2)
    try:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 90) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    status, job = await _case_and_job(case_id)
    assert status == "awaiting_review" and job.status == "succeeded" and job.attempts == 1
    assert "Waiting for job to finish" in log_path.read_text()


@pytest.mark.slow
async def test_a_second_signal_exits_at_once_and_leaves_the_job_for_the_next_worker(api, jotform, catalog,
                                                                                    scene_pngs, tmp_path):
    """Ctrl+C twice (or SIGTERM then Ctrl+C) while a job runs: the worker ends at once, exit 0, and the job stays
    `doing`, for the next worker's `requeue_stalled`, which finishes it. Cancelled through asyncio, its clean-up raced
    the closing of the job queue's pool (a traceback, 'Database error'; or a retry, or `aborted` on its last
    attempt, which nothing retries)."""
    log_path = tmp_path / "worker.log"
    case_id, worker = await _worker_downloading_slowly(api, jotform, scene_pngs, log_path, 120)
    try:
        worker.send_signal(signal.SIGTERM)

        async def stopping():
            return "Stop requested" in log_path.read_text()
        await wait_for(stopping, 30, "the worker to start its graceful stop")
        worker.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(worker.wait, 20) == 0, log_path.read_text()
    finally:
        jotform.state.delays.clear()
        if worker.poll() is None:
            worker.kill()
    assert await _case_and_job(case_id) == ("processing", ("doing", 0))
    logged = log_path.read_text()
    assert "worker_stopped_now" in logged and "Traceback" not in logged, logged
    await job_stalled()  # the stopped worker's heartbeat older than RAIOX_STALLED_JOB_SECONDS
    second = start_worker(log_path)
    try:
        async def done():
            return (await _case_and_job(case_id))[0] == "awaiting_review"
        await wait_for(done, 120, "the next worker to finish the case")
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 60) == 0
    finally:
        if second.poll() is None:
            second.kill()
    status, job = await _case_and_job(case_id)
    assert status == "awaiting_review" and tuple(job) == ("succeeded", 2)
    assert "stalled_job_requeued" in log_path.read_text()
