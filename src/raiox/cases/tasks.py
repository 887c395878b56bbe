"""Case jobs (procrastinate): `purge_expired_cases` (periodic, daily at 03:30 UTC) removes the films and personal
data of cases closed more than RAIOX_RETENTION_DAYS ago (raiox.cases.retention; nothing when that is 0), and, whatever
that is, anonymises the client addresses of sign-in audit entries older than RAIOX_AUDIT_ADDRESS_RETENTION_DAYS
(`forget_addresses`; none when that is 0) and drops the login throttle's stale rows (addresses too)."""

from datetime import UTC, datetime, timedelta

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


async def forget_addresses(days: int, actor: str = ACTOR, maker=None) -> int:
    """Anonymise the address of every sign-in audit entry older than DAYS
    (`review.address_retention.anonymise_addresses`), a batch per transaction, and drop the login tables' stale rows;
    how many entries were changed. A run that changes entries is itself one `audit.anonymise_addresses` entry (its
    count kept up to date batch by batch, so a run stopped midway says what it did)."""
    from raiox.kit.audit import audit, bring_up_to_date
    from raiox.review import repository
    from raiox.review.address_retention import anonymise_addresses

    now = datetime.now(UTC)
    async with session_scope(maker) as session:
        await repository.drop_stale_throttle(session, now)
        await repository.drop_stale_locks(session, now)
    changed, entry_id, before = 0, None, now - timedelta(days=days)
    while True:
        async with session_scope(maker) as session:
            done = await anonymise_addresses(session, before)
            if not done:
                return changed
            changed += done
            if entry_id is None:
                entry_id = await audit(session, actor, "audit.anonymise_addresses", entries=changed,
                                       older_than_days=days)
            else:
                await bring_up_to_date(session, entry_id, entries=changed, older_than_days=days)


@app.periodic(cron="30 3 * * *")
@app.task(name="purge_expired_cases", queueing_lock="purge_expired_cases")
async def purge_expired_cases(timestamp: int) -> int:
    settings = get_settings()
    if settings.audit_address_retention_days > 0:
        anonymised = await forget_addresses(settings.audit_address_retention_days)
        log.info("address_retention_run", days=settings.audit_address_retention_days, anonymised=anonymised)
    days = settings.retention_days
    if days <= 0:
        return 0
    purged = await purge_expired(days)
    JOBS.labels(task="purge_expired_cases", outcome="ok").inc()
    log.info("retention_run", days=days, purged=purged)
    return purged
