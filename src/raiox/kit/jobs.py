"""Background jobs: procrastinate on the same PostgreSQL.

`defer_in_session` enqueues a job inside the caller's SQLAlchemy transaction (outbox pattern): the job
exists if and only if the rows written with it were committed.
"""

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import procrastinate
from procrastinate.jobs import Status
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import libpq_url

TASK_MODULES = ["raiox.intake.tasks", "raiox.delivery.tasks", "raiox.cases.tasks"]


def _job_pool(**kwargs) -> AsyncConnectionPool:
    """procrastinate's pool, sized when the app opens (RAIOX_DB_JOB_POOL_SIZE): settings are not read at import."""
    from raiox.kit.settings import get_settings

    return AsyncConnectionPool(**{**kwargs, "max_size": get_settings().db_job_pool_size}, name="raiox-jobs")


app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=lambda: libpq_url(), min_size=1, pool_factory=_job_pool),
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


# task name -> what to do when a job of it is given up after its worker died on every attempt (the case's own
# "last attempt failed" path never runs then: no exception is raised in a killed process). Called with the job's
# arguments and its number of attempts; must be harmless to call twice.
ABANDONED: dict[str, Callable[[dict, int], Awaitable[None]]] = {}


def on_abandoned(task_name: str):
    """Register the function run when a TASK_NAME job is given up by `requeue_stalled`."""
    def register(hook: Callable[[dict, int], Awaitable[None]]):
        ABANDONED[task_name] = hook
        return hook
    return register


def attempts_allowed(task_name: str) -> int:
    """Runs after the first that a job of TASK_NAME may have: its retry strategy's, else RAIOX_JOB_RETRIES."""
    from raiox.kit.settings import get_settings

    strategy = getattr(app.tasks.get(task_name), "retry_strategy", None)
    return getattr(strategy, "max_attempts", None) or get_settings().job_retries


async def requeue_stalled(keep_hours: int = 72) -> int:
    """Retry jobs left `doing` by workers without a recent heartbeat (killed, OOM, power loss), after a backoff;
    a job whose worker died on every attempt it was allowed is given up (failed, and its task's `on_abandoned`
    hook tells the case), never retried forever: a film that crashes the decoder must not kill workers for ever.

    Also prunes succeeded jobs older than KEEP_HOURS (periodic tasks would otherwise pile up)."""
    from raiox.kit.logging import get_logger
    from raiox.kit.settings import get_settings

    settings, log = get_settings(), get_logger(__name__)
    app.perform_import_paths()  # every task and its hook known, also before a worker has started
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=max(3, settings.stalled_job_seconds)))
    for job in stalled:
        if job.attempts >= attempts_allowed(job.task_name):
            log.error("stalled_job_abandoned", job_id=job.id, task=job.task_name, attempts=job.attempts + 1)
            if hook := ABANDONED.get(job.task_name):
                await hook(job.task_kwargs, job.attempts + 1)
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
            continue
        wait = min(settings.job_retry_wait_s ** (job.attempts + 1), 300)
        log.warning("stalled_job_requeued", job_id=job.id, task=job.task_name, attempts=job.attempts, retry_in_s=wait)
        await app.job_manager.retry_job(job, retry_at=datetime.now(UTC) + timedelta(seconds=wait))
    await app.job_manager.delete_old_jobs(nb_hours=keep_hours)
    return len(stalled)


async def run_worker(**kwargs) -> None:
    """Requeue the jobs of dead workers, then run a worker (the app must be open)."""
    await requeue_stalled()
    await app.run_worker_async(**{**worker_options(), **kwargs})
