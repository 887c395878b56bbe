"""Reconciliation (missed webhooks) and verification of webhook deliveries through the Jotform API."""

import pytest
from sqlalchemy import func, select, text

from fakes.jotform import FORM_ID, created_at_ago, webhook_request
from raiox.intake.reconcile import reconcile
from raiox.kit.db import session_scope
from raiox.models import Case, CaseImage

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"


async def cases() -> dict[str, Case]:
    async with session_scope() as session:
        return {c.jotform_submission_id: c for c in (await session.execute(select(Case))).scalars()}


async def test_reconcile_ingests_the_missed_submission_once(api, jotform, scene_pngs):
    delivered = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0])]})
    missed = jotform.add_submission(FORM_ID, name=("Bia", "Costa"), files={"rx": [("b c.png", scene_pngs[1])]},
                                    created_at=created_at_ago(hours=3))
    jotform.add_submission(FORM_ID, created_at=created_at_ago(days=30))  # outside the look-back window
    jotform.add_submission("999999999999999")  # another form
    assert (await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(delivered["id"])))).status_code == 200
    jotform.fail("/form/", 503, times=1)  # the API hiccups: retried
    assert await reconcile() == 1
    assert await reconcile() == 0
    found = await cases()
    assert set(found) == {delivered["id"], missed["id"]}
    case = found[missed["id"]]
    assert (case.source, case.client_name, case.client_email) == ("reconcile", "Bia Costa", "ana@example.com")
    async with session_scope() as session:
        images = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalars().all()
        jobs = (await session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name='process_case'"))
                ).scalar_one()
    assert [i.filename for i in images] == ["b c.png"] and jobs == 2
    listing = [r for r in jotform.requests if r.path.endswith("/submissions")][-1]
    assert '"created_at:gt"' in listing.query["filter"][0]


async def test_reconciliation_reads_created_at_in_the_jotform_accounts_time_zone(api, jotform):
    """The API's `created_at` has no zone: it is the account's clock (RAIOX_JOTFORM_TIMEZONE, São Paulo by default).
    A submission's time is that moment (not 3 h off as if UTC), and the look-back filter is written on that clock:
    a submission 47 h old is listed, whatever the account's offset."""
    from datetime import UTC, datetime

    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo; the look-back (48 h) from 08/03 12:00 there
    recent = jotform.add_submission(FORM_ID, created_at=datetime(2026, 3, 10, 11, 40))  # 14:40 UTC
    older = jotform.add_submission(FORM_ID, created_at=datetime(2026, 3, 8, 13, 0))  # 47 h ago: in the window
    jotform.add_submission(FORM_ID, created_at=datetime(2026, 3, 8, 11, 0))  # 49 h ago: outside
    assert await reconcile(now=now) == 2
    found = await cases()
    assert set(found) == {recent["id"], older["id"]}
    assert found[recent["id"]].submitted_at == datetime(2026, 3, 10, 14, 40, tzinfo=UTC)
    assert found[older["id"]].submitted_at == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)
    listing = [r for r in jotform.requests if r.path.endswith("/submissions")][-1]
    assert '"created_at:gt": "2026-03-08 12:00:00"' in listing.query["filter"][0]


async def test_reconciliation_reads_the_tooth_as_the_webhook_does(api, jotform):
    delivered = jotform.add_submission(FORM_ID, tooth="região de 46")
    missed = jotform.add_submission(FORM_ID, tooth="região de 46")
    assert (await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(delivered["id"])))).status_code == 200
    assert await reconcile() == 1
    found = await cases()
    assert (found[missed["id"]].source, found[missed["id"]].tooth) == ("reconcile", "região de 46")
    assert found[delivered["id"]].tooth == "região de 46"


async def test_reconcile_then_late_webhook_is_a_duplicate(api, jotform):
    content = jotform.add_submission(FORM_ID)
    assert await reconcile() == 1
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert len(await cases()) == 1


async def test_verified_webhook_trusts_the_api_copy(api, jotform, settings_env, run_worker):
    settings_env(jotform_verify_submissions="true")
    content = jotform.add_submission(FORM_ID, name=("Real", "Name"))
    fields = jotform.webhook_fields(content["id"])
    fields["rawRequest"] = fields["rawRequest"].replace("Real", "Forged")
    first = await api.post(WEBHOOK, **webhook_request(fields))
    assert first.status_code == 200 and first.json()["status"] == "verifying" and first.json()["case_id"] is None
    forged = dict(fields, submissionID="1234567890123456789")
    assert (await api.post(WEBHOOK, **webhook_request(forged))).status_code == 200
    await run_worker()
    found = await cases()
    assert list(found) == [content["id"]]  # the forged id failed the lookup: no case
    assert found[content["id"]].client_name == "Real Name"
    again = await api.post(WEBHOOK, **webhook_request(fields))
    assert again.json()["case_id"] == str(found[content["id"]].id) and again.json()["duplicate"] is True
    assert (again.json()["status"], again.json()["case_status"]) == ("received", found[content["id"]].status)
    assert first.json()["case_status"] is None
    async with session_scope() as session:
        count = (await session.execute(select(func.count()).select_from(Case))).scalar_one()
    assert count == 1


async def test_a_verification_that_gives_up_on_jotform_leaves_the_submission_to_reconciliation(
        api, jotform, settings_env, run_worker):
    """Jotform down for longer than the verification job's retries: the job gives up without a case, and the
    reconciliation (RAIOX_JOTFORM_FORM_ID, which verification requires) ingests the submission once Jotform is back:
    the webhook's 200 "verifying" never loses it."""
    settings_env(jotform_verify_submissions="true", job_retries="0")
    content = jotform.add_submission(FORM_ID, name=("Real", "Name"))
    jotform.fail("/submission/", 503, times=100)  # the whole API down (the worker's reconciliation run too)
    jotform.fail("/form/", 503, times=100)
    first = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    assert first.json()["status"] == "verifying"
    await run_worker()
    assert await cases() == {}
    async with session_scope() as session:
        states = (await session.execute(text("SELECT status FROM procrastinate_jobs WHERE task_name = "
                                             "'ingest_submission'"))).scalars().all()
    assert states == ["failed"]
    jotform.state.failures.clear()
    assert await reconcile() == 1
    assert (await cases())[content["id"]].client_name == "Real Name"
    again = (await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
    assert (again["duplicate"], again["case_status"]) == (True, "received")


async def _ingest_jobs() -> list[tuple[str, str, int]]:
    async with session_scope() as session:
        rows = (await session.execute(text(
            "SELECT args->>'submission_id', status::text, attempts FROM procrastinate_jobs "
            "WHERE task_name = 'ingest_submission' ORDER BY id"))).all()
    return [tuple(r) for r in rows]


async def test_jotform_refusing_a_submission_for_good_is_not_retried(api, jotform, settings_env, run_worker, capsys):
    """A forged or foreign submission id (Jotform's 401 while the key reads the form's submissions) and one Jotform
    answers 404 for are refused at once: one attempt, the job done, no case, logged with the reason and counted; not
    retried RAIOX_JOB_RETRIES times as an outage would be."""
    from raiox.kit.logging import configure_logging
    from raiox.kit.metrics import JOBS

    def refused() -> float:
        return JOBS.labels(task="ingest_submission", outcome="submission_refused")._value.get()

    configure_logging()
    settings_env(jotform_verify_submissions="true")  # RAIOX_JOB_RETRIES 5: a retry would leave the job `todo`
    template = jotform.webhook_fields(jotform.add_submission(FORM_ID)["id"])
    jotform.state.submissions.clear()
    foreign, gone = "1234567890123456789", "1234567890123456780"
    jotform.fail(f"/submission/{gone}", 404, times=1)
    before = refused()
    capsys.readouterr()
    for sid in (foreign, gone):
        answer = await api.post(WEBHOOK, **webhook_request(dict(template, submissionID=sid)))
        assert answer.json()["status"] == "verifying"
    await run_worker()
    assert await _ingest_jobs() == [(foreign, "succeeded", 1), (gone, "succeeded", 1)]
    assert await cases() == {} and refused() == before + 2
    assert [r.path for r in jotform.requests if r.path.startswith("/submission/")] == [
        f"/submission/{foreign}", f"/submission/{gone}"]  # each asked once
    logged = [line for line in capsys.readouterr().err.splitlines() if "verification_refused" in line]
    assert len(logged) == 2 and "401" in logged[0] and "404" in logged[1]
    assert all("no such submission in this account" in line for line in logged)


async def test_a_verification_refused_because_of_our_api_key_is_retried_and_never_lost(
        api, jotform, settings_env, run_worker, capsys):
    """A 401 that the form's own submission list gets too is our key (wrong, revoked, of another region), not the
    submission: retried like an outage (the job waits for its next attempt), logged as the key's problem; once the
    key is fixed the submission gets its case (here by the reconciliation, as after the job's last attempt)."""
    from raiox.kit.logging import configure_logging

    configure_logging()
    settings_env(jotform_verify_submissions="true", jotform_api_key="a-revoked-key")
    content = jotform.add_submission(FORM_ID, name=("Real", "Name"))
    capsys.readouterr()
    assert (await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).status_code == 200
    await run_worker()
    assert await _ingest_jobs() == [(content["id"], "todo", 1)]  # failed once, its retry scheduled
    assert await cases() == {}
    err = capsys.readouterr().err
    assert "jotform_api_refused" in err and "verification_refused" not in err
    settings_env(jotform_api_key="test-jotform-key")
    assert await reconcile() == 1
    assert (await cases())[content["id"]].client_name == "Real Name"


async def test_reconcile_keeps_a_submission_holding_nul_and_lone_surrogates(committed, jotform):
    content = jotform.add_submission(FORM_ID, name=("Jo\x00ão", "Sil\ud800va"), notes="a\x00b")
    assert await reconcile() == 1
    case = (await cases())[content["id"]]
    assert (case.client_name, case.notes) == ("João Sil\ufffdva", "ab")
    assert case.answers["q3_nomeDentista"] == {"first": "João", "last": "Sil\ufffdva"}


async def test_reconcile_runs_are_counted_in_the_jobs_metric(monkeypatch):
    from raiox.intake import reconcile, tasks
    from raiox.kit.metrics import JOBS
    from raiox.kit.settings import get_settings

    def value(outcome: str) -> float:
        return JOBS.labels(task="reconcile_submissions", outcome=outcome)._value.get()

    before = value("succeeded"), value("error")
    monkeypatch.setenv("RAIOX_JOTFORM_API_KEY", "")
    get_settings.cache_clear()
    await tasks.reconcile_submissions.func(timestamp=0)  # not configured: skipped, a normal run

    async def database_down() -> None:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(reconcile, "reconcile", database_down)
    with pytest.raises(ConnectionRefusedError):
        await tasks.reconcile_submissions.func(timestamp=0)
    get_settings.cache_clear()
    assert (value("succeeded"), value("error")) == (before[0] + 1, before[1] + 1)


async def test_a_submission_the_database_refuses_does_not_stop_the_run_and_is_tried_again(committed, jotform):
    """One submission's rows refused by the database (here a constraint its name breaks) is rolled back alone, logged
    and counted: the run ingests the others, and the next run tries it again (ingested once the database takes it),
    never a second case for the others. An id longer than the webhook accepts (and the schema's 40 characters) never
    reaches the database: skipped, logged and counted as such by every run."""
    from raiox.kit.metrics import JOBS

    def refused(outcome: str = "submission_refused") -> float:
        return JOBS.labels(task="reconcile_submissions", outcome=outcome)._value.get()

    first = jotform.add_submission(FORM_ID, created_at=created_at_ago(hours=4))
    blocked = jotform.add_submission(FORM_ID, name=("Recusado", "Silva"), created_at=created_at_ago(hours=3))
    too_long = jotform.add_submission(FORM_ID, submission_id="9" * 41, created_at=created_at_ago(hours=2))
    last = jotform.add_submission(FORM_ID, created_at=created_at_ago(hours=1))
    before, skipped = refused(), refused("submission_skipped")
    async with session_scope() as session:
        await session.execute(text("ALTER TABLE cases ADD CONSTRAINT test_refused_name "
                                   "CHECK (client_name IS DISTINCT FROM 'Recusado Silva')"))
    try:
        assert await reconcile() == 2
        assert set(await cases()) == {first["id"], last["id"]}
        assert refused() == before + 1 and refused("submission_skipped") == skipped + 1
    finally:
        async with session_scope() as session:
            await session.execute(text("ALTER TABLE cases DROP CONSTRAINT IF EXISTS test_refused_name"))
    assert await reconcile() == 1  # the database takes it now: ingested by the next run
    found = await cases()
    assert set(found) == {first["id"], blocked["id"], last["id"]} and too_long["id"] not in found
    assert found[blocked["id"]].client_name == "Recusado Silva"
    assert refused() == before + 1  # the id the schema can never hold is no refusal: skipped again, every run
    assert refused("submission_skipped") == skipped + 2
    async with session_scope() as session:
        jobs = (await session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name='process_case'"))
                ).scalar_one()
        images = (await session.execute(select(func.count()).select_from(CaseImage))).scalar_one()
    assert jobs == 3 and images == 0


async def test_reconcile_skips_submissions_of_another_form_or_with_malformed_ids(committed, jotform, capsys):
    """Items of the form's list that the webhook (ids) or verification (the configured form) would refuse: a copy of
    another form, a malformed or missing form id, an id over 40 digits or not digits: each skipped with its reason,
    logged and counted, before any query; nothing created for them, the form's own submission ingested."""
    from raiox.kit.logging import configure_logging
    from raiox.kit.metrics import JOBS

    def skipped() -> float:
        return JOBS.labels(task="reconcile_submissions", outcome="submission_skipped")._value.get()

    configure_logging()
    own = jotform.add_submission(FORM_ID)
    template = jotform.add_submission(FORM_ID)
    del jotform.state.submissions[template["id"]]
    odd = [dict(template, id="6084250982513019001", form_id="999999999999999"),  # another form
           dict(template, id="6084250982513019002", form_id="24323127134344x"),  # malformed form id
           dict(template, id="6084250982513019003", form_id="9" * 41),
           dict(template, id="6084250982513019004", form_id=None),
           dict(template, id="9" * 41),
           dict(template, id="60842509825130190x5")]
    jotform.also_listed[FORM_ID].extend(odd)
    before = skipped()
    capsys.readouterr()
    assert await reconcile() == 1
    assert set(await cases()) == {own["id"]}
    assert skipped() == before + len(odd)
    logged = [line for line in capsys.readouterr().err.splitlines() if "reconcile_submission_skipped" in line]
    assert len(logged) == len(odd)
    for reason in ("of another form than RAIOX_JOTFORM_FORM_ID", "'form_id must be", "'id must be"):
        assert sum(reason in line for line in logged) == 2, (reason, logged)
    async with session_scope() as session:
        jobs = (await session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name='process_case'"))
                ).scalar_one()
    assert jobs == 1
