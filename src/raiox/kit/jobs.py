"""Background jobs: procrastinate on the same PostgreSQL.

`defer_in_session` enqueues a job inside the caller's SQLAlchemy transaction (outbox pattern): the job
exists if and only if the rows written with it were committed.
"""

import json
from datetime import datetime

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import libpq_url

TASK_MODULES = ["raiox.intake.tasks", "raiox.delivery.tasks", "raiox.cases.tasks"]

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=lambda: libpq_url(), min_size=1, max_size=10),
    import_paths=TASK_MODULES,
)

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, :priority, :lock, :queueing_lock,"
    " CAST(:args AS jsonb), :scheduled_at)::procrastinate_job_to_defer_v1]))"
)


async def defer_in_session(
    session: AsyncSession,
    task_name: str,
    args: dict,
    *,
    queue: str = "default",
    lock: str | None = None,
    queueing_lock: str | None = None,
    priority: int = 0,
    scheduled_at: datetime | None = None,
) -> int:
    params = {
        "queue": queue,
        "task": task_name,
        "priority": priority,
        "lock": lock,
        "queueing_lock": queueing_lock,
        "args": json.dumps(args),
        "scheduled_at": scheduled_at,
    }
    return (await session.execute(_DEFER, params)).scalar_one()


def worker_options() -> dict:
    """Heartbeats sized to RAIOX_STALLED_JOB_SECONDS: a live worker is never mistaken for a dead one."""
    from raiox.kit.settings import get_settings

    stalled = max(3, get_settings().stalled_job_seconds)
    return {"update_heartbeat_interval": max(1.0, stalled / 3), "stalled_worker_timeout": float(stalled)}


async def requeue_stalled(keep_hours: int = 72) -> int:
    """Retry jobs left `doing` by workers without a recent heartbeat (killed, OOM, power loss).

    Also prunes succeeded jobs older than KEEP_HOURS (periodic tasks would otherwise pile up)."""
    from raiox.kit.logging import get_logger
    from raiox.kit.settings import get_settings

    seconds = max(3, get_settings().stalled_job_seconds)
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds))
    for job in stalled:
        get_logger(__name__).warning("stalled_job_requeued", job_id=job.id, task=job.task_name, attempts=job.attempts)
        await app.job_manager.retry_job(job)
    await app.job_manager.delete_old_jobs(nb_hours=keep_hours)
    return len(stalled)


async def run_worker(**kwargs) -> None:
    """Requeue the jobs of dead workers, then run a worker (the app must be open)."""
    await requeue_stalled()
    await app.run_worker_async(**{**worker_options(), **kwargs})
