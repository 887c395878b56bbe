"""Panel sessions under attack: parallel wrong passwords lock their source at exactly the limit, logout ends the
session."""

import asyncio
import re
from datetime import UTC, datetime

import httpx
import pytest
from review_helpers import add_user

from raiox.kit.db import session_scope
from raiox.kit.settings import get_settings
from raiox.review import repository

PASSWORD = "correct horse battery"
_ips = iter(range(1, 250))


@pytest.fixture
async def panel(committed):
    """A panel client from an address of its own."""
    from raiox.app import create_app

    async with session_scope() as session:
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    transport = httpx.ASGITransport(app=create_app(), client=(f"203.0.113.{next(_ips)}", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def _login(http, password: str = PASSWORD) -> httpx.Response:
    token = _csrf((await http.get("/admin/login")).text)
    return await http.post("/admin/login", data={"email": "rev@example.com", "password": password, "csrf_token": token})


async def _user():
    async with session_scope() as session:
        return await repository.user_by_email(session, "rev@example.com")


async def _source_lock(source: str):
    """(failures, locked_until) of the account's failed logins from SOURCE; None without a row."""
    from sqlalchemy import select

    from raiox.models import LoginLock

    async with session_scope() as session:
        row = (await session.execute(select(LoginLock).where(LoginLock.source == source))).scalar_one_or_none()
        return None if row is None else (row.failures, row.locked_until)


async def test_parallel_wrong_passwords_over_http_lock_the_source_at_exactly_the_limit(panel):
    limit = get_settings().admin_max_failed_logins
    source = panel._transport.client[0]
    token = _csrf((await panel.get("/admin/login")).text)

    async def wrong() -> httpx.Response:
        return await panel.post("/admin/login", data={"email": "rev@example.com", "password": "wrong password",
                                                      "csrf_token": token})

    first = await asyncio.gather(*(wrong() for _ in range(limit - 1)))
    assert [r.status_code for r in first] == [401] * (limit - 1)
    assert await _source_lock(source) == (limit - 1, None)  # no failure lost
    second = await asyncio.gather(*(wrong() for _ in range(4)))
    assert [r.status_code for r in second] == [401] * 4
    failures, until = await _source_lock(source)
    assert until is not None and until > datetime.now(UTC)
    locked = await _login(panel)  # the right password, but this source is locked out now
    assert locked.status_code == 401 and "bloqueada" in locked.text
    user = await _user()
    # the account itself: counted (those checked before the source's lock was committed too), not locked
    assert user.locked_until is None and limit <= user.failed_logins <= limit + 3


async def test_concurrent_failures_in_separate_sessions_lock_at_exactly_the_limit(committed):
    from raiox.review.auth import authenticate

    async with session_scope() as session:
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    limit, source = get_settings().admin_max_failed_logins, "203.0.113.250"

    async def attempt(password: str, ip: str = source):
        async with session_scope() as session:
            return await authenticate(session, "rev@example.com", password, ip)

    assert await asyncio.gather(*(attempt("wrong") for _ in range(limit - 1))) == [None] * (limit - 1)
    assert await _source_lock(source) == (limit - 1, None)
    assert await attempt("wrong") is None  # the limit-th failure locks, in the same statement
    assert (await _source_lock(source))[1] > datetime.now(UTC)
    assert await attempt(PASSWORD) is None  # locked: even the right password is refused from there
    assert await attempt(PASSWORD, "198.51.100.20") is not None  # from elsewhere the operator gets in
    async with session_scope() as session:  # the lock expired
        from sqlalchemy import update

        from raiox.models import LoginLock

        await session.execute(update(LoginLock).values(locked_until=None))
    assert await attempt("wrong") is None and (await attempt(PASSWORD)) is not None
    assert await _source_lock(source) == (0, None)  # a success forgets the source's failures (and trusts it)
    assert (await _user()).failed_logins == 0


async def test_logout_ends_the_session_server_side(panel):
    assert (await _login(panel)).status_code == 303
    cookie = panel.cookies["raiox_admin"]
    from raiox.app import create_app

    # a second device
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver")
    async with other:
        assert (await _login(other)).status_code == 303
        queue = await panel.get("/admin/")
        assert queue.status_code == 200
        logout = await panel.post("/admin/logout", data={"csrf_token": _csrf(queue.text)})
        assert logout.status_code == 303 and "raiox_admin=" in logout.headers["set-cookie"]
        panel.cookies.set("raiox_admin", cookie)  # replay the cookie the logout cleared
        replay = await panel.get("/admin/", follow_redirects=False)
        assert replay.status_code == 303 and replay.headers["location"].startswith("/admin/login")
        # the API accepts panel sessions too: the old cookie is no actor there either
        api = await panel.post("/cases/00000000-0000-0000-0000-000000000000/reject", json={"message": "x"},
                               headers={"X-CSRF-Token": _csrf(queue.text)})
        assert api.status_code == 401
        # logging out ends the user's sessions everywhere (documented in docs/operations.md)
        assert (await other.get("/admin/", follow_redirects=False)).status_code == 303
    async with session_scope() as session:
        from sqlalchemy import select

        from raiox.models import AuditEntry

        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
        assert actions.count("auth.logout") == 1
        signed = (await session.execute(select(AuditEntry.target, AuditEntry.details).where(
            AuditEntry.action.in_(["auth.login", "auth.logout"])))).all()
    # the audit trail keeps who signed in and out, not from where (the address serves only against failures)
    assert len(signed) == 3 and all(target is None and "203.0.113." not in str(details) for target, details in signed)
    panel.cookies.clear()
    assert (await _login(panel)).status_code == 303  # a fresh login works again
    assert (await panel.get("/admin/")).status_code == 200


async def test_password_change_still_ends_the_session(panel):
    from raiox.review.accounts import hash_password

    assert (await _login(panel)).status_code == 303
    assert (await panel.get("/admin/", follow_redirects=False)).status_code == 200
    async with session_scope() as session:
        user = await repository.user_by_email(session, "rev@example.com")
        user.password_hash = hash_password("another long password")
    assert (await panel.get("/admin/", follow_redirects=False)).status_code == 303


async def test_the_session_cookie_shows_nothing_of_the_password_hash(panel):
    """The cookie is signed, not encrypted: whoever holds it can read it. Its password fingerprint is a keyed
    digest, so it gives away no part of the argon2 hash; a new password still ends the session."""
    from raiox.review.accounts import hash_password
    from raiox.review.auth import _serializer

    assert (await _login(panel)).status_code == 303
    data = _serializer().loads(panel.cookies["raiox_admin"])
    user = await _user()
    assert len(data["pw"]) == 16 and data["pw"] not in user.password_hash
    assert not any(user.password_hash[k:k + 6] in data["pw"] for k in range(len(user.password_hash) - 6))
    assert (await panel.get("/admin/")).status_code == 200
    async with session_scope() as session:
        (await repository.user_by_email(session, "rev@example.com")).password_hash = hash_password("another one 123")
    assert (await panel.get("/admin/")).status_code == 303  # a new password: the session is over


async def test_a_locked_account_costs_a_password_check_like_an_unknown_one(committed, monkeypatch):
    """No account enumeration by timing: a locked account (or locked-out source) runs the same argon2 check an
    unknown address does."""
    from raiox.review import auth

    async with session_scope() as session:
        await add_user(session, "rev@example.com", PASSWORD, "reviewer")
    checks: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password",
                        lambda stored, password: checks.append(stored) or real(stored, password))
    for _ in range(get_settings().admin_max_failed_logins):
        async with session_scope() as session:
            assert await auth.authenticate(session, "rev@example.com", "wrong", "203.0.113.77") is None
    checks.clear()
    async with session_scope() as session:
        assert await auth.authenticate(session, "rev@example.com", PASSWORD, "203.0.113.77") is None  # locked out
        assert await auth.authenticate(session, "nobody@example.com", PASSWORD, "203.0.113.77") is None
    assert len(checks) == 2 and checks[0] == checks[1]  # the same (dummy) hash checked both times


async def _audited(*actions: str) -> list:
    from sqlalchemy import select

    from raiox.models import AuditEntry

    async with session_scope() as session:
        return (await session.execute(select(AuditEntry).where(AuditEntry.action.in_(actions))
                                      .order_by(AuditEntry.id))).scalars().all()


async def test_failed_logins_and_lock_outs_are_audited_and_read_in_portuguese_on_the_audit_page(panel):
    """Every refused sign-in is an audit entry (who: the source address; about: the account, none when no account has
    the address typed, which is not kept; why), and so is each lock it sets; never the password."""
    from raiox.review.views_audit import detail_items

    limit, source = get_settings().admin_max_failed_logins, panel._transport.client[0]
    token = _csrf((await panel.get("/admin/login")).text)
    unknown = await panel.post("/admin/login", data={"email": "fulano.paciente@example.com", "password": "segredo-1",
                                                     "csrf_token": token})
    assert unknown.status_code == 401
    for _ in range(limit):
        assert (await _login(panel, "wrong password 2")).status_code == 401
    assert (await _login(panel)).status_code == 401  # the right one, from a source locked out now
    failed = await _audited("auth.login_failed")
    assert [(e.actor, e.target, e.details) for e in failed] == [
        (f"ip:{source}", None, {"reason": "unknown"}),
        *[(f"ip:{source}", "rev@example.com", {"reason": "password"})] * limit,
        (f"ip:{source}", "rev@example.com", {"reason": "locked"})]
    [lock] = await _audited("auth.lockout")
    assert (lock.actor, lock.target) == (f"ip:{source}", "rev@example.com")
    assert lock.details == {"scope": "source", "minutes": get_settings().admin_lockout_minutes}
    assert lock.id > failed[limit].id  # after the failure that set it
    everything = " ".join(f"{e.actor} {e.target} {e.details}" for e in await _audited("auth.login_failed",
                                                                                      "auth.lockout"))
    assert "segredo" not in everything and "wrong password" not in everything and PASSWORD not in everything
    assert "fulano" not in everything  # an address no account has is not kept (the log masks it too)
    # the admins' Auditoria page names them in Portuguese
    async with session_scope() as session:
        await add_user(session, "admin@example.com", PASSWORD, "admin")
    transport = httpx.ASGITransport(app=panel._transport.app, client=(f"203.0.113.{next(_ips)}", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as admin:
        token = _csrf((await admin.get("/admin/login")).text)
        assert (await admin.post("/admin/login", data={"email": "admin@example.com", "password": PASSWORD,
                                                       "csrf_token": token})).status_code == 303
        page = (await admin.get("/admin/audit", params={"action": "auth.lockout"})).text
        assert "Entrada bloqueada após tentativas falhas" in page and f"endereço {source}" in page
        assert "este endereço, nesta conta" in page and "rev@example.com" in page
        page = (await admin.get("/admin/audit", params={"actor": source})).text
        assert page.count("<strong>Tentativa de entrada recusada</strong>") == limit + 2
        for reason in ("nenhuma conta com esse e-mail", "senha errada", "entrada bloqueada (tentativas falhas demais)"):
            assert reason in page
        assert "ip:" not in page and "password" not in page and "unknown" not in page
        assert '<option value="auth.login_failed"' in (await admin.get("/admin/audit")).text  # a filter choice
    assert ("motivo", "senha errada") in detail_items(failed[1])


async def test_the_address_throttle_counts_the_failures_every_panel_process_saw(panel):
    """Production runs several panel processes: the address's failures are counted in the database, so failures
    another process counted bring this one's throttle on (an in-memory count let each process allow 20)."""
    from datetime import timedelta

    from raiox.models import LoginThrottle
    from raiox.review.views_auth import IP_MAX_FAILURES, IP_WINDOW_S

    source, now = panel._transport.client[0], datetime.now(UTC)
    window = timedelta(seconds=IP_WINDOW_S)
    for _ in range(IP_MAX_FAILURES - 1):  # what another process counted, each in its own request
        async with session_scope() as session:
            assert await repository.count_address_failure(session, source, now=now, window=window,
                                                          limit=IP_MAX_FAILURES, lock_until=now + window) is None
    assert (await _login(panel, "wrong password")).status_code == 401  # the limit-th, counted here: it engages
    assert (await _login(panel)).status_code == 429  # the right password too
    [lock] = await _audited("auth.lockout")
    assert lock.details == {"scope": "address", "minutes": IP_WINDOW_S // 60}
    async with session_scope() as session:
        row = await session.get(LoginThrottle, source)
        assert row.failures == IP_MAX_FAILURES and row.locked_until > datetime.now(UTC) + window - timedelta(minutes=1)
        # a failure counted by another process while the lock holds changes nothing, audits nothing
        assert await repository.count_address_failure(session, source, now=datetime.now(UTC), window=window,
                                                      limit=IP_MAX_FAILURES, lock_until=now + 2 * window) is None
        assert await repository.address_throttled(session, source, datetime.now(UTC))
        # the lock over: the address starts a new count
        later = now + 2 * window
        assert not await repository.address_throttled(session, source, later)
        assert await repository.count_address_failure(session, source, now=later, window=window,
                                                      limit=IP_MAX_FAILURES, lock_until=later + window) is None
        await session.refresh(row)
        assert (row.failures, row.locked_until, row.window_started_at) == (1, None, later)
    assert len(await _audited("auth.lockout")) == 1


async def test_the_address_throttle_answers_429_and_is_audited_once_when_it_engages(panel):
    from raiox.review.views_auth import IP_MAX_FAILURES, IP_WINDOW_S

    source = panel._transport.client[0]
    token = _csrf((await panel.get("/admin/login")).text)

    async def attempt(n: int) -> httpx.Response:
        return await panel.post("/admin/login", data={"email": f"guess{n}@example.com", "password": "guess",
                                                      "csrf_token": token})

    assert [(await attempt(n)).status_code for n in range(IP_MAX_FAILURES)] == [401] * IP_MAX_FAILURES
    throttled = await attempt(IP_MAX_FAILURES)
    assert throttled.status_code == 429 and "Muitas tentativas a partir deste endereço" in throttled.text
    assert (await _login(panel)).status_code == 429  # the right password too, from this address, for a while
    [lock] = await _audited("auth.lockout")
    assert (lock.actor, lock.target, lock.details) == (f"ip:{source}", None,
                                                       {"scope": "address", "minutes": IP_WINDOW_S // 60})
    # the throttled answers are logged for fail2ban, not audited one by one (nothing to write per request)
    assert len(await _audited("auth.login_failed")) == IP_MAX_FAILURES


IMPORT_THEN_LOG_IN = """
import argon2
made = []
real = argon2.PasswordHasher.hash
argon2.PasswordHasher.hash = lambda self, *args, **kwargs: made.append(1) or real(self, *args, **kwargs)
from raiox.app import create_app
from raiox.review import auth, panel, routes
print(len(made))
first, again = auth._dummy_hash(), auth._dummy_hash()
print(len(made), first == again, first.startswith("$argon2id$"), auth.verify_password(first, "a guess"))
"""


def test_importing_the_app_and_the_panel_hashes_no_password_and_the_dummy_hash_is_made_once():
    """The argon2 hash that an unknown address or a locked account is checked against (`auth._dummy_hash`) was made
    at import: every process that loaded the app or the panel paid it. It is made on first use, then kept: every
    later refusal checks the same hash, at a real check's cost."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", IMPORT_THEN_LOG_IN], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "True", "True", "False"], done.stdout + done.stderr


async def test_the_dummy_hash_is_made_when_the_app_starts_not_by_the_first_refusal(database_url):
    """Made lazily, the dummy hash cost the first unknown address (or locked account) of each process one more argon2
    hash than a later one: a timing difference. The API host's start-up makes it (in a thread), before any request
    (not yet the admin host's: see `review.panel._released`)."""
    from raiox.app import create_app
    from raiox.review import auth

    for make in (create_app,):
        auth._dummy_hash.cache_clear()
        app = make()
        assert auth._dummy_hash.cache_info().currsize == 0  # building the app makes none either
        async with app.router.lifespan_context(app):
            assert auth._dummy_hash.cache_info().currsize == 1, make.__name__
