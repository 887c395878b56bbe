"""Case jobs (procrastinate): `purge_expired_cases` (periodic, daily at 03:30 UTC) removes the films and personal
data of cases closed more than RAIOX_RETENTION_DAYS ago (raiox.cases.retention); nothing when that is 0."""

from raiox.cases import retention
from raiox.kit.db import session_scope
from raiox.kit.jobs import app
from raiox.kit.logging import get_logger
from raiox.kit.metrics import JOBS
from raiox.kit.settings import get_settings

log = get_logger(__name__)
ACTOR = "system:retention"


async def purge_expired(days: int) -> int:
    """Purge every expired case, one transaction each (a failing one is logged and left for the next run);
    how many were purged."""
    purged, failed = 0, set()
    while True:
        async with session_scope() as session:
            due = [i for i in await retention.expired(session, days, retention.BATCH + len(failed)) if i not in failed]
        if not due:
            return purged
        for case_id in due:
            try:
                async with session_scope() as session:
                    await retention.purge(session, case_id, actor=ACTOR)
                purged += 1
            except Exception:
                log.error("case_purge_failed", case_id=str(case_id), exc_info=True)
                failed.add(case_id)


@app.periodic(cron="30 3 * * *")
@app.task(name="purge_expired_cases", queueing_lock="purge_expired_cases")
async def purge_expired_cases(timestamp: int) -> int:
    days = get_settings().retention_days
    if days <= 0:
        return 0
    purged = await purge_expired(days)
    JOBS.labels(task="purge_expired_cases", outcome="ok").inc()
    log.info("retention_run", days=days, purged=purged)
    return purged
