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

TASK_MODULES = ["raiox.intake.tasks", "raiox.delivery.tasks"]

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
