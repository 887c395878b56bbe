"""A database outage met by a request is an outage, not a bug: 503 with Retry-After (Jotform, a client, the operator
try again; nothing half-recorded), never a 500 after a long hang; and a database restart leaves no dead pooled
connection for the next webhook to fail on."""

import contextlib
import os
import re

import psycopg
from sqlalchemy import func, select

from fakes.jotform import FORM_ID, webhook_request
from raiox.kit import db
from raiox.kit.db import session_scope
from raiox.models import Case

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"
NOWHERE = "postgresql://raiox@127.0.0.1:1/raiox"  # nothing listens on port 1: refused at once


@contextlib.asynccontextmanager
async def database_down(settings_env):
    """Every new connection of the app refused (the database stopped), the real one back afterwards."""
    from raiox.intake import fastpool

    async def point_at(url: str) -> None:
        await fastpool.close()
        settings_env(database_url=url)
        db.get_engine.cache_clear()
        db.get_sessionmaker.cache_clear()

    real = os.environ["RAIOX_DATABASE_URL"]
    await point_at(NOWHERE)
    try:
        yield
    finally:
        await point_at(real)


async def test_requests_during_a_database_outage_answer_503_and_record_nothing(api, jotform, bearer, settings_env):
    content = jotform.add_submission(FORM_ID, files={})
    page = await api.get("/admin/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    async with database_down(settings_env):
        webhook = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
        listed = await api.get("/cases", headers=bearer)
        login = await api.post("/admin/login", data={"email": "a@example.com", "password": "x" * 12,
                                                     "csrf_token": csrf})
    assert webhook.status_code == 503 and webhook.headers["retry-after"] == "30"
    assert webhook.json() == {"error": "unavailable", "detail": "the database is unavailable at the moment; "
                                                                "nothing was recorded, try again shortly"}
    assert listed.status_code == 503 and listed.json()["error"] == "unavailable"
    assert login.status_code == 503 and "Serviço indisponível no momento" in login.text
    async with session_scope() as session:  # the database back: the webhook had recorded nothing, Jotform resends
        assert (await session.execute(select(func.count()).select_from(Case))).scalar_one() == 0


async def test_a_webhook_right_after_a_database_restart_is_recorded(api, jotform, database_url):
    from raiox.intake import fastpool

    await fastpool.close()
    first = jotform.add_submission(FORM_ID, files={})
    assert (await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(first["id"])))).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:  # a restart: every other connection dies
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                     "AND datname = current_database()")
    for _ in range(3):
        content = jotform.add_submission(FORM_ID, files={})
        answer = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
        assert answer.status_code == 200, answer.text
    await fastpool.close()
    async with session_scope() as session:
        assert (await session.execute(select(func.count()).select_from(Case))).scalar_one() == 4
