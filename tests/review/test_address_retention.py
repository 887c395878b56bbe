"""LGPD minimisation of sign-in addresses: refused sign-ins' audit entries (actor `ip:<address>`) lose the address
after RAIOX_AUDIT_ADDRESS_RETENTION_DAYS (daily `purge_expired_cases` job, `raiox audit anonymise-addresses`), the
entries themselves and every other action untouched; the login tables' address rows do not outlive their day."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from review_helpers import add_user
from sqlalchemy import select, update
from typer.testing import CliRunner

from raiox.kit.audit import audit
from raiox.kit.db import session_scope
from raiox.models import AuditEntry, LoginLock, LoginThrottle


async def _entry(actor: str, action: str, age_days: int, target: str | None = None, **details) -> int:
    async with session_scope() as session:
        entry_id = await audit(session, actor, action, target=target, **details)
        await session.execute(update(AuditEntry).where(AuditEntry.id == entry_id)
                              .values(created_at=datetime.now(UTC) - timedelta(days=age_days)))
    return entry_id


async def _rows() -> dict[int, tuple[str, str, str | None, dict]]:
    async with session_scope() as session:
        found = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()
        return {e.id: (e.actor, e.action, e.target, e.details) for e in found}


async def test_the_daily_job_anonymises_old_sign_in_addresses_only_and_says_how_many(committed, configure):
    from raiox.cases.tasks import purge_expired_cases

    old_failed = await _entry("ip:203.0.113.7", "auth.login_failed", 100, "rev@example.com", reason="password")
    old_lock = await _entry("ip:2001:db8:1:2::/64", "auth.lockout", 95, None, scope="address", minutes=15,
                            source="2001:db8:1:2::/64", seen=["198.51.100.9", "kept text"])
    recent = await _entry("ip:203.0.113.8", "auth.login_failed", 10, None, reason="unknown")
    signed_in = await _entry("user:rev@example.com", "auth.login", 200)
    other = await _entry("ip:198.51.100.1", "case.note", 200, None, text="203.0.113.7")  # not a sign-in entry
    before = await _rows()

    assert await purge_expired_cases(0) == 0  # RAIOX_RETENTION_DAYS=0: no case purged, addresses still minimised
    after = await _rows()
    assert after[old_failed] == ("ip:anonymised", "auth.login_failed", "rev@example.com", {"reason": "password"})
    assert after[old_lock] == ("ip:anonymised", "auth.lockout", None, {
        "scope": "address", "minutes": 15, "source": "anonymised", "seen": ["anonymised", "kept text"]})
    for kept in (recent, signed_in, other):
        assert after[kept] == before[kept]
    run = [row for row in after.values() if row[1] == "audit.anonymise_addresses"]
    assert run == [("system:retention", "audit.anonymise_addresses", None, {"entries": 2, "older_than_days": 90})]

    assert await purge_expired_cases(0) == 0  # nothing left to change: no second entry
    assert len(await _rows()) == len(after)

    configure(AUDIT_ADDRESS_RETENTION_DAYS="5")
    await purge_expired_cases(0)
    assert (await _rows())[recent][0] == "ip:anonymised"
    configure(AUDIT_ADDRESS_RETENTION_DAYS="0")  # keep: nothing changes
    await _entry("ip:203.0.113.9", "auth.login_failed", 400, None, reason="unknown")
    await purge_expired_cases(0)
    assert "ip:203.0.113.9" in {row[0] for row in (await _rows()).values()}


async def test_the_anonymised_actor_reads_in_portuguese():
    from raiox.review.reasons import actor_text

    assert actor_text("ip:anonymised", "pt_BR") == "endereço removido (retenção de dados)"
    assert actor_text("ip:203.0.113.7", "pt_BR") == "endereço 203.0.113.7"


async def test_the_daily_job_drops_login_rows_whose_day_has_passed(committed):
    from raiox.cases.tasks import purge_expired_cases

    now = datetime.now(UTC)
    async with session_scope() as session:
        user = await add_user(session, "rev@example.com", "a long passphrase")
        session.add_all([
            LoginThrottle(source="203.0.113.1", failures=3, window_started_at=now - timedelta(days=2)),  # stale
            LoginThrottle(source="203.0.113.2", failures=3, window_started_at=now - timedelta(hours=2)),  # current
            LoginThrottle(source="203.0.113.3", failures=20, window_started_at=now - timedelta(days=2),
                          locked_until=now + timedelta(minutes=5)),  # still locked
            LoginLock(user_id=user.id, source="203.0.113.4", failures=2, updated_at=now - timedelta(days=2)),
            LoginLock(user_id=user.id, source="203.0.113.5", failures=0, updated_at=now - timedelta(days=2),
                      last_success_at=now - timedelta(days=2)),  # the operator's own: trusted for 30 days
        ])
    await purge_expired_cases(0)
    async with session_scope() as session:
        throttled = set((await session.execute(select(LoginThrottle.source))).scalars())
        locks = set((await session.execute(select(LoginLock.source))).scalars())
    assert throttled == {"203.0.113.2", "203.0.113.3"} and locks == {"203.0.113.5"}


async def test_the_cli_anonymises_on_request(committed, configure):
    from raiox.cli import app

    old = await _entry("ip:203.0.113.7", "auth.login_failed", 20, None, reason="unknown")

    def cli(*args: str):
        return asyncio.to_thread(CliRunner().invoke, app, ["audit", "anonymise-addresses", *args],
                                 catch_exceptions=False)

    done = await cli()  # the setting's 90 days: too recent
    assert done.exit_code == 0 and "anonymised 0 audit entries" in done.stdout
    done = await cli("--older-than", "7")
    assert done.exit_code == 0 and "anonymised 1 audit entry older than 7 day(s)" in done.stdout
    rows = await _rows()
    assert rows[old][0] == "ip:anonymised"
    assert [(r[0], r[3]) for r in rows.values() if r[1] == "audit.anonymise_addresses"] == [
        ("cli:raiox audit anonymise-addresses", {"entries": 1, "older_than_days": 7})]
    configure(AUDIT_ADDRESS_RETENTION_DAYS="0")
    assert (await cli()).exit_code == 2


@pytest.mark.parametrize("value", ["-1", "36501", "ninety"])
def test_the_setting_is_validated(configure, value):
    from pydantic import ValidationError

    from raiox.kit.settings import Settings

    with pytest.raises(ValidationError):
        Settings(_env_file=None, audit_address_retention_days=value)
