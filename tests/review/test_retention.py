"""Data retention: a closed case's films, implants and personal data are removed (by the daily job after
RAIOX_RETENTION_DAYS, or `raiox cases purge`); the case row, its decision and the audit trail stay."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from review_helpers import add_case, add_system, settle_jobs
from sqlalchemy import select, update
from typer.testing import CliRunner

from raiox.delivery.report import report_token
from raiox.kit.audit import audit as write_audit
from raiox.kit.tokens import create_token
from raiox.kit.db import session_scope
from raiox.kit.errors import Conflict, ServiceUnavailable
from raiox.kit.storage import get_storage
from raiox.models import AuditEntry, Case, CaseEvent, CaseImage, CaseStatus, Fixture, ImplantSystem, ReferenceImage
from raiox.review import service as review


async def _closed_case(age_days: int = 0, status: str = CaseStatus.delivered) -> Case:
    """A delivered case of two films (one of them also a catalog reference), with a note, changed AGE_DAYS ago."""
    async with session_scope() as session:
        if await session.get(ImplantSystem, "neo-cm") is None:
            await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        case = await add_case(session, candidates=[("neo-cm", 0.9)], images=2, status=CaseStatus.awaiting_review,
                              tooth="região de 46")
        await review.add_note(session, case.id, "Paciente Maria, dente 36.", actor="user:rev@example.com")
        await review.set_client_email(session, case.id, "maria.clinica@example.com", actor="user:rev@example.com")
        await review.approve(session, case.id, "neo-cm", actor="user:rev@example.com", message="Confere, Dra. Ana.")
        film = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id,
                                                               CaseImage.position == 1))).scalar_one()
        session.add(ReferenceImage(system_id="neo-cm", storage_key=film.storage_key, sha256=film.sha256,
                                   source="case", origin=f"case:{case.id}/image:{film.id}"))  # "add to catalog"
        row = await session.get(Case, case.id)
        row.status = status
        await settle_jobs(session)  # delivered
    if age_days:
        async with session_scope() as session:
            await session.execute(update(Case).where(Case.id == case.id)
                                  .values(updated_at=datetime.now(UTC) - timedelta(days=age_days)))
    return case


async def _keys(case_id) -> list[str]:
    async with session_scope() as session:
        return list((await session.execute(select(CaseImage.storage_key).where(CaseImage.case_id == case_id)
                                           .order_by(CaseImage.position))).scalars())


async def test_purging_removes_films_implants_and_personal_data_and_keeps_the_decision(committed, client):
    from raiox.cases import retention

    from raiox.kit.metrics import REGISTRY

    def purges() -> float:
        return REGISTRY.get_sample_value("raiox_review_actions_total", {"action": "case.purge"}) or 0.0

    case = await _closed_case()
    async with session_scope() as session:  # a text longer than `kit.audit` keeps: its first part and its length
        await write_audit(session, "user:rev@example.com", "case.note", case_id=case.id, note="Paciente Maria. " * 400)
    own_key, shared_key = await _keys(case.id)
    before = purges()
    async with session_scope() as session:
        assert await retention.purge(session, case.id, actor="cli:test") == 1
    assert purges() == before + 1  # written through the one audit function, so counted like every action
    storage = get_storage()
    assert not await storage.exists(own_key) and await storage.exists(shared_key)  # a catalog reference keeps its
    async with session_scope() as session:
        row = await session.get(Case, case.id)
        assert row.purged_at and row.status == CaseStatus.delivered and row.approved_system_id == "neo-cm"
        assert (row.client_name, row.client_email, row.client_phone, row.notes, row.review_message,
                row.tooth) == (None,) * 6
        assert row.answers == {} and row.payload == {} and row.jotform_submission_id == case.jotform_submission_id
        assert (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).first() is None
        assert (await session.execute(select(Fixture))).first() is None  # the implants went with their films
        reasons = (await session.execute(select(CaseEvent.reason).where(CaseEvent.case_id == case.id))).scalars()
        assert set(reasons) == {None}
        audit = {a.action: a.details for a in (await session.execute(
            select(AuditEntry).where(AuditEntry.case_id == case.id))).scalars()}
        assert "note" not in audit["case.note"] and "message" not in audit["case.approve"]
        texts = {"note", "note_chars", "message", "message_chars"}
        every = (await session.execute(select(AuditEntry.details).where(AuditEntry.case_id == case.id))).scalars()
        assert not [details for details in every if texts & set(details)]  # nor the length of a long one
        assert audit["case.contact"] == {}  # both addresses gone
        assert audit["case.approve"]["system"] == "Grand Morse (Neodent)"  # who decided what stays
        assert audit["case.purge"] == {"objects_deleted": 1, "objects_kept": 1}
        assert await retention.purge(session, case.id, actor="cli:test") == 0  # again: harmless
    page = await client.get(f"/reports/{report_token(case.id)}")
    assert page.status_code == 410 and "Os dados deste caso foram removidos" in page.text
    assert "responda ao e-mail" not in page.text  # no report can be produced any more
    async with session_scope() as session:
        token = await create_token(session, "ops", ["cases"])
    answer = await client.get(f"/cases/{case.id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.headers["cache-control"] == "no-store"  # a case's JSON is kept by no cache
    shown = answer.json()
    assert shown["purged_at"] and shown["client_name"] is None and shown["images"] == [] and shown["tooth"] is None
    async with session_scope() as session:  # nothing personal may come back in
        with pytest.raises(review.CasePurged):
            await review.add_note(session, case.id, "Paciente Carla, CPF 123", actor="user:rev@example.com")
        with pytest.raises(review.CasePurged):
            await review.revoke_report(session, case.id, actor="user:rev@example.com")


async def test_only_closed_cases_are_purged_and_a_storage_outage_leaves_the_case_whole(committed, monkeypatch):
    from raiox.cases import retention

    open_case = await _closed_case(status=CaseStatus.approved)
    async with session_scope() as session:
        with pytest.raises(Conflict, match="only closed cases"):
            await retention.purge(session, open_case.id, actor="cli:test")
    case = await _closed_case()

    async def down(self, key):
        raise ServiceUnavailable("object storage unreachable")

    monkeypatch.setattr(type(get_storage()), "delete", down)
    with pytest.raises(ServiceUnavailable):
        async with session_scope() as session:
            await retention.purge(session, case.id, actor="cli:test")
    async with session_scope() as session:
        row = await session.get(Case, case.id)
        assert row.purged_at is None and row.client_name  # rolled back: the next run tries again
    assert len(await _keys(case.id)) == 2


async def test_the_daily_job_purges_what_expired_and_the_cli_purges_on_request(committed, configure):
    from raiox.cases.tasks import purge_expired_cases
    from raiox.cli import app

    old, recent = await _closed_case(age_days=40), await _closed_case(age_days=5)
    waiting = await add_case_awaiting(age_days=400)
    assert await purge_expired_cases(0) == 0  # RAIOX_RETENTION_DAYS=0: keep everything
    configure(RETENTION_DAYS="30")
    assert await purge_expired_cases(0) == 1
    async with session_scope() as session:
        assert (await session.get(Case, old.id)).purged_at is not None
        assert (await session.get(Case, recent.id)).purged_at is None
        assert (await session.get(Case, waiting)).purged_at is None  # not closed: never purged

    def cli(*args: str):  # the command runs its own event loop: in a thread, beside the test's
        return asyncio.to_thread(CliRunner().invoke, app, ["cases", "purge", *args], catch_exceptions=False)

    assert (await cli()).exit_code == 2
    listed = await cli("--older-than", "1", "--dry-run")
    assert listed.exit_code == 0 and str(recent.id) in listed.stdout and "would purge 1 case(s)" in listed.stdout
    refused = await cli("--dry-run", "--case", str(waiting), "--case", str(old.id), "--case", str(recent.id))
    assert "would purge 1 case(s)" in refused.stdout and str(waiting) not in refused.stdout  # as the real run would
    assert "awaiting_review" in refused.stderr and "already purged" in refused.stderr and refused.exit_code == 1
    assert (await cli("--older-than", "1000000")).exit_code == 2  # beyond any date: refused as an argument
    done = await cli("--case", str(waiting), "--case", str(recent.id))  # one refused stops no other
    assert done.exit_code == 1 and "purged 1 case(s)" in done.stdout and "awaiting_review" in done.stderr
    async with session_scope() as session:
        assert (await session.get(Case, recent.id)).purged_at is not None
        purges = (await session.execute(select(AuditEntry.case_id, AuditEntry.actor).where(
            AuditEntry.action == "case.purge").order_by(AuditEntry.id))).all()
    assert purges == [(old.id, "system:retention"), (recent.id, "cli:raiox cases purge")]  # not the dry runs


async def add_case_awaiting(age_days: int):
    async with session_scope() as session:
        case = await add_case(session, candidates=[("neo-cm", 0.9)])
    async with session_scope() as session:
        await session.execute(update(Case).where(Case.id == case.id)
                              .values(updated_at=datetime.now(UTC) - timedelta(days=age_days)))
    return case.id


async def test_a_purged_failed_case_keeps_the_kind_of_its_failure_not_the_file_names(committed, client):
    from raiox.cases import retention

    recorded = ("no usable image (joao-da-silva-36.jpg: not an image: cannot identify image file; "
                "https://www.jotform.com/uploads/clinica/1/maria-souza.png: image too small: 40x30)")
    async with session_scope() as session:
        case = await add_case(session, status=CaseStatus.failed, name="João da Silva")
        (await session.get(Case, case.id)).failure_reason = recorded
    async with session_scope() as session:
        await retention.purge(session, case.id, actor="cli:test")
    async with session_scope() as session:
        token = await create_token(session, "ops", ["cases"])
    shown = (await client.get(f"/cases/{case.id}", headers={"Authorization": f"Bearer {token}"})).json()
    assert shown["status"] == "failed" and shown["failure_reason"] == "no usable image (details removed)"
    assert "joao" not in str(shown).lower() and "maria" not in str(shown).lower()


@pytest.mark.parametrize(("recorded", "kept"), [
    ("no image could be downloaded (1.png: host answered 404)", "no image could be downloaded (details removed)"),
    ("processing failed after 3 attempts: OSError: /ana.png", "processing failed after 3 attempts: details removed"),
    ("jotform: Jotform API 404 for submission 123", "jotform: details removed"),
    ("no file submitted", "no file submitted"),
    ("no usable image (details removed)", "no usable image (details removed)"),  # purging again changes nothing
    (None, None),
])
def test_a_failure_reason_loses_its_detail_and_keeps_its_kind(recorded, kept):
    from raiox.cases.retention import without_detail
    from raiox.review.reasons import reason_text

    assert without_detail(recorded) == kept
    if kept and kept != recorded:  # the panel still says what kind of failure it was, in pt-BR
        assert reason_text(kept, "pt_BR") != kept
