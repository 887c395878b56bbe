import uuid

import pytest
from review_helpers import add_case, add_system, settle_jobs
from sqlalchemy import select

from raiox.kit.tokens import create_token
from raiox.models import AuditEntry, CaseStatus, Delivery


async def _setup(session):
    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("neo-cm", 0.91), ("str-bl", 0.74)])
    token = await create_token(session, "ops")
    return case, {"Authorization": f"Bearer {token}"}


async def _jobs(session, case_id):
    from sqlalchemy import text

    rows = await session.execute(text("SELECT task_name, args FROM procrastinate_jobs WHERE args->>'case_id' = :c"),
                                 {"c": str(case_id)})
    return rows.all()


def _counted(action: str) -> float:
    from raiox.kit.metrics import REGISTRY

    return REGISTRY.get_sample_value("raiox_review_actions_total", {"action": action}) or 0.0


async def test_approve_enqueues_delivery_in_same_transaction(client, session):
    case, auth = await _setup(session)
    before = {action: _counted(action) for action in ("case.approve", "delivery.enqueue")}
    response = await client.post(f"/cases/{case.id}/approve", json={"system_id": "str-bl", "message": "Confere."},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "approved" and body["system_id"] == "str-bl" and body["reviewed_by"] == "token:ops"
    assert [j.task_name for j in await _jobs(session, case.id)] == ["deliver_result"]
    delivery = (await session.execute(select(Delivery).where(Delivery.case_id == case.id))).scalar_one()
    assert delivery.status == "pending"
    entries = (await session.execute(select(AuditEntry).where(AuditEntry.case_id == case.id)
                                     .order_by(AuditEntry.id))).scalars().all()
    assert [e.action for e in entries] == ["delivery.enqueue", "case.approve"]
    enqueued = entries[0]  # delivery's own entry: the delivery it armed, no details, written by the review
    assert (enqueued.actor, enqueued.target, enqueued.details) == ("system:review", str(delivery.id), {})
    # both written through the one audit function: counted in raiox_review_actions_total like every other action
    assert {action: _counted(action) - before[action] for action in before} == {"case.approve": 1,
                                                                               "delivery.enqueue": 1}


def test_the_audit_counters_help_text_says_it_counts_every_audited_write():
    """Its name is a contract (dashboards); its help, what a Prometheus user reads, must not say "review actions" for
    a count of every audit entry (catalog loads, sign-ins, retention...)."""
    from prometheus_client import generate_latest

    from raiox.kit.metrics import REGISTRY

    help_line = next(line for line in generate_latest(REGISTRY).decode().splitlines()
                     if line.startswith("# HELP raiox_review_actions_total "))
    assert "review actions" not in help_line.lower() and "every audited write" in help_line


async def test_the_message_to_the_dentist_is_capped_at_what_the_one_page_report_prints(client, session):
    """The API's schema, the service and the panel (test_panel_errors) take the same REPORT_MESSAGE_MAX."""
    from raiox.kit.errors import Unprocessable
    from raiox.review import service
    from raiox.review.schemas import REPORT_MESSAGE_MAX

    case, auth = await _setup(session)
    url = f"/cases/{case.id}/approve"
    too_long = await client.post(url, json={"system_id": "neo-cm", "message": "m" * (REPORT_MESSAGE_MAX + 1)},
                                 headers=auth)
    assert too_long.status_code == 422 and await _jobs(session, case.id) == []
    with pytest.raises(Unprocessable, match=f"at most {REPORT_MESSAGE_MAX}, so that the report fits one A4 page"):
        await service.approve(session, case.id, "neo-cm", actor="token:ops", message="m" * (REPORT_MESSAGE_MAX + 1))
    longest = await client.post(url, json={"system_id": "neo-cm", "message": "m" * REPORT_MESSAGE_MAX}, headers=auth)
    assert longest.status_code == 200 and longest.json()["status"] == "approved"


async def test_repeated_approve_is_idempotent_and_different_one_conflicts(client, session):
    case, auth = await _setup(session)
    first = await client.post(f"/cases/{case.id}/approve", json={"system": "neo-cm"}, headers=auth)
    again = await client.post(f"/cases/{case.id}/approve", json={"system": "neo-cm"}, headers=auth)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(await _jobs(session, case.id)) == 1  # approved once, delivered once
    other = await client.post(f"/cases/{case.id}/approve", json={"system": "str-bl"}, headers=auth)
    assert other.status_code == 409
    assert "not awaiting review" in other.json()["detail"]
    reject = await client.post(f"/cases/{case.id}/reject", json={"message": "Envie outra"}, headers=auth)
    assert reject.status_code == 409


@pytest.mark.parametrize(("verb", "body"), [("approve", {"system_id": "neo-cm"}), ("reject", {"message": "Borrada."})])
async def test_a_decision_gives_reviewed_at_as_the_case_detail_does(client, session, verb, body):
    """The same instant in the same words as `GET /cases/{id}` (an ISO 8601 date-time, UTC as `Z`), the first
    answer and the repeat (the case read back from the database) alike."""
    from datetime import datetime

    case, auth = await _setup(session)
    url = f"/cases/{case.id}"
    decided = await client.post(f"{url}/{verb}", json=body, headers=auth)
    detail = await client.get(url, headers=auth)
    assert decided.status_code == detail.status_code == 200, decided.text
    assert decided.json()["reviewed_at"] == detail.json()["reviewed_at"] and decided.json()["reviewed_at"][-1] == "Z"
    session.expire_all()  # the repeat reads the decision from the database
    again = await client.post(f"{url}/{verb}", json=body, headers=auth)
    when = again.json()["reviewed_at"]
    assert again.status_code == 200 and when == (await client.get(url, headers=auth)).json()["reviewed_at"]
    assert datetime.fromisoformat(when) == datetime.fromisoformat(decided.json()["reviewed_at"])


async def test_approve_requires_auth_and_known_system(client, session):
    case, auth = await _setup(session)
    assert (await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"})).status_code == 401
    bad = await client.post(f"/cases/{case.id}/approve", json={"system_id": "nope"}, headers=auth)
    assert bad.status_code == 422 and "unknown implant system" in bad.json()["detail"]
    missing = await client.post(f"/cases/{uuid.uuid4()}/approve", json={"system_id": "neo-cm"}, headers=auth)
    assert missing.status_code == 404


async def test_reject_needs_message_and_enqueues(client, session):
    case, auth = await _setup(session)
    assert (await client.post(f"/cases/{case.id}/reject", json={"message": ""}, headers=auth)).status_code == 422
    response = await client.post(f"/cases/{case.id}/reject", json={"message": "Radiografia borrada."}, headers=auth)
    assert response.status_code == 200
    assert response.json()["decision"] == "rejected" and response.json()["status"] == CaseStatus.rejected
    assert len(await _jobs(session, case.id)) == 1
    entries = (await session.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.details).where(
        AuditEntry.case_id == case.id).order_by(AuditEntry.id))).all()
    assert entries == [("system:review", "delivery.enqueue", {}),  # the 422 wrote nothing
                       ("token:ops", "case.reject", {"message": "Radiografia borrada."})]


async def test_case_not_awaiting_review_is_409(client, session):
    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    case = await add_case(session, status=CaseStatus.processing)
    token = await create_token(session, "ops")
    response = await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 409
    assert "processing" in response.json()["detail"]


async def test_approve_adds_case_images_to_catalog(client, session):
    from raiox.models import ReferenceEmbedding, ReferenceImage

    case, auth = await _setup(session)
    response = await client.post(f"/cases/{case.id}/approve", json={"system_id": "str-bl", "add_to_catalog": True},
                                 headers=auth)
    assert response.status_code == 200
    refs = (await session.execute(select(ReferenceImage).where(ReferenceImage.source == "case"))).scalars().all()
    assert len(refs) == 1 and refs[0].system_id == "str-bl" and refs[0].origin.startswith(f"case:{case.id}")
    emb = (await session.execute(select(ReferenceEmbedding)
                                 .where(ReferenceEmbedding.reference_image_id == refs[0].id))).scalar_one()
    assert emb.model_id == "raiox-v1" and emb.system_id == "str-bl"


async def test_a_film_added_to_the_catalog_is_stored_again_without_its_metadata(client, session):
    """The reference a case's film becomes outlives the case (its purge keeps an object a reference uses): it stores
    its own copy of the picture, without the phone's EXIF or the DICOM's patient, never the file the dentist sent."""
    import io

    import numpy as np
    from fakes.films import carries_personal_data, jpeg_with_exif
    from PIL import Image

    from raiox.kit.storage import content_key, get_storage
    from raiox.models import CaseImage, ReferenceImage
    from raiox.vision import read_image

    case, auth = await _setup(session)
    image = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalar_one()
    grey = np.asarray(Image.open(io.BytesIO(await get_storage().get(image.storage_key))))
    photo = jpeg_with_exif(grey)  # the film as a phone photo of it: author, serial number, GPS
    key, sha = content_key(photo)
    await get_storage().put(key, photo, "image/jpeg")
    image.storage_key, image.sha256, image.filename = key, sha, "foto.jpg"
    await session.flush()
    response = await client.post(f"/cases/{case.id}/approve", json={"system_id": "str-bl", "add_to_catalog": True},
                                 headers=auth)
    assert response.status_code == 200, response.text
    ref = (await session.execute(select(ReferenceImage).where(ReferenceImage.source == "case"))).scalar_one()
    assert ref.sha256 == sha and ref.storage_key != key  # the film is known as before; its object is not shared
    assert ref.metadata_free  # known so: `raiox catalog scrub-references` has nothing to do on it
    stored = await get_storage().get(ref.storage_key)
    assert not carries_personal_data(stored) and carries_personal_data(await get_storage().get(key))
    assert np.array_equal(read_image(stored), read_image(photo, "foto.jpg"))  # the fixture's box and vector fit it


async def test_approve_names_the_other_systems_the_films_show(client, session):
    """A patient with implants of several systems: the approval carries the others, in order, once."""
    case, auth = await _setup(session)
    await add_system(session, "nob-cc", "Nobel", "Active CC", seed=3)
    url = f"/cases/{case.id}/approve"
    unknown = await client.post(url, json={"system_id": "neo-cm", "other_system_ids": ["str-bl", "nope"]}, headers=auth)
    assert unknown.status_code == 422 and "'nope'" in unknown.json()["detail"]
    too_many = await client.post(url, json={"system_id": "neo-cm", "other_system_ids": [f"s{i}" for i in range(9)]},
                                 headers=auth)
    assert too_many.status_code == 422
    assert (await client.get(f"/cases/{case.id}", headers=auth)).json()["status"] == "awaiting_review"
    body = {"system_id": "neo-cm", "other_system_ids": [" nob-cc", "neo-cm", "str-bl", "nob-cc"]}
    first = await client.post(url, json=body, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["other_system_ids"] == ["nob-cc", "str-bl"]  # stripped, main and repeats dropped, in order
    assert (await client.post(url, json=body, headers=auth)).json() == first.json()  # a repeat is harmless
    other = await client.post(url, json={"system_id": "neo-cm", "other_system_ids": ["str-bl"]}, headers=auth)
    assert other.status_code == 409
    shown = (await client.get(f"/cases/{case.id}", headers=auth)).json()
    assert shown["approved_system_id"] == "neo-cm" and shown["other_system_ids"] == ["nob-cc", "str-bl"]
    details = (await session.execute(select(AuditEntry.details).where(
        AuditEntry.case_id == case.id, AuditEntry.action == "case.approve"))).scalar_one()
    # named as the panel names systems everywhere: name (maker)
    assert details["system"] == "Grand Morse (Neodent)"
    assert details["others"] == ["Active CC (Nobel)", "Bone Level (Straumann)"]
    assert len(await _jobs(session, case.id)) == 1


async def test_add_to_catalog_with_other_systems_adds_only_films_that_rank_the_main_system_first(client, session):
    from raiox.models import CaseImage, Fixture, FixtureResult, ReferenceImage

    await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    token = await create_token(session, "ops")

    async def mixed_case():
        case = await add_case(session, candidates=[("neo-cm", 0.93), ("str-bl", 0.70)], images=2)
        second = (await session.execute(select(Fixture).join(CaseImage).where(
            CaseImage.case_id == case.id, CaseImage.position == 1))).scalars().one()
        results = await session.execute(select(FixtureResult).where(FixtureResult.fixture_id == second.id))
        for result in results.scalars():
            result.system_id = {"neo-cm": "str-bl", "str-bl": "neo-cm"}[result.system_id]  # film 2 shows the other
        await session.flush()
        return case

    async def added(case, others):
        response = await client.post(f"/cases/{case.id}/approve", headers={"Authorization": f"Bearer {token}"},
                                     json={"system_id": "neo-cm", "other_system_ids": others, "add_to_catalog": True})
        assert response.status_code == 200, response.text
        return (await session.execute(select(ReferenceImage.origin).where(
            ReferenceImage.origin.like(f"case:{case.id}/%")))).scalars().all()

    alone, mixed = await mixed_case(), await mixed_case()
    assert len(await added(alone, [])) == 2  # one system for the whole case: every film is its reference
    origins = await added(mixed, ["str-bl"])
    film_one = (await session.execute(select(CaseImage.id).where(
        CaseImage.case_id == mixed.id, CaseImage.position == 0))).scalar_one()
    assert origins == [f"case:{mixed.id}/image:{film_one}"]  # film 2 shows the other system: not a reference

    mapped = await mixed_case()  # the reviewer says which implant is which: each film joins its implant's system
    fixtures = (await session.execute(select(Fixture.id).join(CaseImage).where(CaseImage.case_id == mapped.id)
                                      .order_by(CaseImage.position))).scalars().all()
    response = await client.post(f"/cases/{mapped.id}/approve", headers={"Authorization": f"Bearer {token}"}, json={
        "system_id": "neo-cm", "other_system_ids": ["str-bl"], "add_to_catalog": True,
        "implants": [{"fixture_id": str(fixtures[0]), "system_id": "neo-cm"},
                     {"fixture_id": str(fixtures[1]), "system_id": "str-bl"}]})
    assert response.status_code == 200, response.text
    refs = (await session.execute(select(ReferenceImage.system_id, ReferenceImage.box).where(
        ReferenceImage.origin.like(f"case:{mapped.id}/%")).order_by(ReferenceImage.origin))).all()
    assert sorted(system for system, _box in refs) == ["neo-cm", "str-bl"] and all(box for _s, box in refs)


async def test_a_failed_delivery_can_be_marked_delivered_another_way(client, session):
    """A submission deleted in Jotform fails every resend: the reviewer says how the result got there instead."""
    from raiox.cases.service import transition
    from raiox.models import Case, CaseEvent

    case, auth = await _setup(session)
    url = f"/cases/{case.id}/mark-delivered"
    assert (await client.post(url, json={"message": "por telefone"})).status_code == 401
    early = await client.post(url, json={"message": "por telefone"}, headers=auth)
    assert early.status_code == 409 and "awaiting_review" in early.json()["detail"]
    await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"}, headers=auth)
    row = await session.get(Case, case.id)
    await transition(session, row, CaseStatus.delivery_failed, actor="system:delivery", reason="jotform: 401")
    assert (await client.post(url, json={"message": "  "}, headers=auth)).status_code == 422
    for _ in range(2):  # a double click marks once
        assert (await client.post(url, json={"message": "Enviado por telefone."}, headers=auth)).status_code == 204
    await session.refresh(row)
    assert row.status == CaseStatus.delivered and row.failure_reason is None
    delivery = (await session.execute(select(Delivery).where(Delivery.case_id == case.id))).scalar_one()
    assert delivery.status == "manual"
    event = (await session.execute(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(
        CaseEvent.id.desc()))).scalars().first()
    assert (event.to_status, event.actor, event.reason) == ("delivered", "token:ops", "Enviado por telefone.")
    marks = (await session.execute(select(AuditEntry.details).where(
        AuditEntry.case_id == case.id, AuditEntry.action == "delivery.mark_delivered"))).scalars().all()
    assert marks == [{"message": "Enviado por telefone."}]


async def test_decision_bodies_refuse_unknown_fields_and_count_other_systems_once(client, session):
    case, auth = await _setup(session)
    url = f"/cases/{case.id}/approve"
    typo = await client.post(url, json={"system_id": "neo-cm", "other_systems": ["str-bl"]}, headers=auth)
    assert typo.status_code == 422 and typo.json()["fields"][0]["field"] == "other_systems"  # not silently dropped
    many = [f"sys-{i}" for i in range(8)]
    for i, system_id in enumerate(many):
        await add_system(session, system_id, "Acme", f"S{i}", seed=20 + i)
    body = {"system_id": " neo-cm ", "other_system_ids": ["neo-cm", *many, many[0]]}  # 10 given, 8 others
    approved = await client.post(url, json=body, headers=auth)
    assert approved.status_code == 200, approved.text
    assert approved.json()["system_id"] == "neo-cm" and approved.json()["other_system_ids"] == many


async def test_a_second_mark_with_another_note_is_a_conflict(client, session):
    from raiox.cases.service import transition
    from raiox.models import Case

    case, auth = await _setup(session)
    await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"}, headers=auth)
    await transition(session, await session.get(Case, case.id), CaseStatus.delivery_failed, actor="system:delivery",
                     reason="jotform: 401")
    url = f"/cases/{case.id}/mark-delivered"
    assert (await client.post(url, json={"message": "Por telefone."}, headers=auth)).status_code == 204
    other = await client.post(url, json={"message": "Por e-mail pessoal."}, headers=auth)
    assert other.status_code == 409 and "another note" in other.json()["detail"]
    assert (await client.post(url, json={"message": "Por telefone."}, headers=auth)).status_code == 204


async def test_add_to_catalog_never_makes_one_image_a_reference_of_two_systems(client, session):
    from raiox.models import CaseImage, ReferenceImage

    case, auth = await _setup(session)
    twin = await add_case(session, candidates=[("str-bl", 0.91)])
    image = (await session.execute(select(CaseImage).where(CaseImage.case_id == case.id))).scalar_one()
    twin_image = (await session.execute(select(CaseImage).where(CaseImage.case_id == twin.id))).scalar_one()
    twin_image.sha256, twin_image.storage_key = image.sha256, image.storage_key  # the same film sent twice
    await session.flush()
    for which, system in ((case, "neo-cm"), (twin, "str-bl")):
        response = await client.post(f"/cases/{which.id}/approve", headers=auth,
                                     json={"system_id": system, "add_to_catalog": True})
        assert response.status_code == 200
    owners = (await session.execute(select(ReferenceImage.system_id).where(
        ReferenceImage.sha256 == image.sha256))).scalars().all()
    assert owners == ["neo-cm"]



async def test_approve_says_which_system_each_implant_is(client, session):
    """Films with implants of two systems: the approval maps each implant (by its id in the case detail) to one of
    the approved systems; the mapping is part of the decision (a repeat is harmless, another mapping a 409)."""
    case, auth = await _setup(session)
    case2 = await add_case(session, candidates=[("neo-cm", 0.9)], images=2)
    fixtures = [i["implants"][0]["id"] for i in (await client.get(f"/cases/{case2.id}", headers=auth)).json()["images"]]
    stranger = (await client.get(f"/cases/{case.id}", headers=auth)).json()["images"][0]["implants"][0]["id"]
    url = f"/cases/{case2.id}/approve"
    base = {"system_id": "neo-cm", "other_system_ids": ["str-bl"]}
    for implants, says in (([{"fixture_id": fixtures[0], "system_id": "nob-x"}], "'nob-x' is neither"),
                           ([{"fixture_id": stranger, "system_id": "neo-cm"}], "not an implant of this case"),
                           ([{"fixture_id": fixtures[0], "system_id": "neo-cm"},
                             {"fixture_id": fixtures[0], "system_id": "str-bl"}], "two systems"),
                           ([{"fixture_id": "not-a-uuid", "system_id": "neo-cm"}], "fixture_id")):
        refused = await client.post(url, json=base | {"implants": implants}, headers=auth)
        assert refused.status_code == 422 and says in refused.text, (implants, refused.text)
    mapping = [{"fixture_id": fixtures[0], "system_id": "neo-cm"}, {"fixture_id": fixtures[1], "system_id": "str-bl"}]
    first = await client.post(url, json=base | {"implants": mapping}, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json()["implants"] == mapping
    assert (await client.post(url, json=base | {"implants": mapping}, headers=auth)).json() == first.json()
    swapped = [{"fixture_id": fixtures[0], "system_id": "str-bl"}, {"fixture_id": fixtures[1], "system_id": "neo-cm"}]
    assert (await client.post(url, json=base | {"implants": swapped}, headers=auth)).status_code == 409
    details = (await session.execute(select(AuditEntry.details).where(
        AuditEntry.case_id == case2.id, AuditEntry.action == "case.approve"))).scalar_one()
    assert details["implants"] == {fixtures[0]: "neo-cm", fixtures[1]: "str-bl"}
    shown = [i["implants"][0] for i in (await client.get(f"/cases/{case2.id}", headers=auth)).json()["images"]]
    assert [(i["approved_system_id"], i["number"]) for i in shown] == [("neo-cm", 1), ("str-bl", 1)]


async def test_adding_films_to_the_catalog_needs_a_token_with_the_catalog_scope(client, session):
    case, _auth = await _setup(session)
    review_only = {"Authorization": f"Bearer {await create_token(session, 'reviewer-bot', ['review'])}"}
    refused = await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm", "add_to_catalog": True},
                                headers=review_only)
    assert refused.status_code == 403 and "'catalog' scope" in refused.json()["detail"]
    assert (await client.get(f"/cases/{case.id}", headers=_auth)).json()["status"] == "awaiting_review"
    both = {"Authorization": f"Bearer {await create_token(session, 'curator', ['review', 'catalog'])}"}
    approved = await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm", "add_to_catalog": True},
                                 headers=both)
    assert approved.status_code == 200, approved.text


async def test_report_links_are_revoked_and_results_sent_again_through_the_api(client, session):
    case, auth = await _setup(session)
    url = f"/cases/{case.id}"
    assert (await client.post(f"{url}/revoke-report", headers=auth)).status_code == 409  # no report yet
    assert (await client.post(f"{url}/approve", json={"system_id": "neo-cm"}, headers=auth)).status_code == 200
    running = await client.post(f"{url}/revoke-report", headers=auth)  # the delivery would send the revoked link
    assert running.status_code == 409 and "in progress" in running.json()["detail"]
    await settle_jobs(session)
    revoked = await client.post(f"{url}/revoke-report", headers=auth)
    assert revoked.status_code == 204 and revoked.content == b"" and "content-type" not in revoked.headers
    refused = await client.post(f"{url}/redeliver", headers=auth)
    assert refused.status_code == 409 and "only a delivered result" in refused.json()["detail"]
    assert (await client.post(f"{url}/revoke-report")).status_code == 401
    actions = (await session.execute(select(AuditEntry.actor, AuditEntry.action).where(
        AuditEntry.case_id == case.id, AuditEntry.action.in_(["report.revoke", "delivery.redeliver"])))).all()
    assert actions == [("token:ops", "report.revoke")]  # once: the refused ones wrote nothing


async def test_a_delivered_result_is_sent_again_through_the_api_and_audited(client, session):
    from raiox.models import Case

    case, auth = await _setup(session)
    assert (await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"}, headers=auth)).status_code \
        == 200
    await settle_jobs(session)
    (await session.get(Case, case.id)).status = CaseStatus.delivered
    await session.flush()
    sent = await client.post(f"/cases/{case.id}/redeliver", headers=auth)
    assert sent.status_code == 204, sent.text
    soon = await client.post(f"/cases/{case.id}/redeliver", headers=auth)
    assert soon.status_code == 409  # on its way again: not delivered
    entries = (await session.execute(select(AuditEntry.actor, AuditEntry.action).where(
        AuditEntry.case_id == case.id).order_by(AuditEntry.id))).all()
    assert entries[-1] == ("token:ops", "delivery.redeliver") and entries.count(entries[-1]) == 1


async def test_a_redelivery_refused_as_too_soon_says_when_in_retry_after(client, session):
    """429 (RFC 6585) names when the action is allowed again: a client waits that long instead of guessing."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from raiox.models import Case

    case, auth = await _setup(session)
    assert (await client.post(f"/cases/{case.id}/approve", json={"system_id": "neo-cm"}, headers=auth)).status_code \
        == 200

    async def delivered_again():
        await settle_jobs(session)
        (await session.get(Case, case.id)).status = CaseStatus.delivered
        await session.flush()

    await delivered_again()
    assert (await client.post(f"/cases/{case.id}/redeliver", headers=auth)).status_code == 204
    await delivered_again()
    soon = await client.post(f"/cases/{case.id}/redeliver", headers=auth)
    assert soon.status_code == 429 and soon.json()["error"] == "too_many_requests"
    assert 590 <= int(soon.headers["retry-after"]) <= 600, soon.headers  # the 10 minutes between two sends
    # three sends in the last day (2, 3 and 5 hours ago): allowed again once the one of 5 hours ago is a day old
    now = datetime.now(UTC)
    await session.execute(update(AuditEntry).where(AuditEntry.case_id == case.id,
                                                   AuditEntry.action == "delivery.redeliver")
                          .values(created_at=now - timedelta(hours=2)))
    for hours in (3, 5):
        session.add(AuditEntry(actor="token:ops", action="delivery.redeliver", case_id=case.id, details={},
                               created_at=now - timedelta(hours=hours)))
    await session.flush()
    today = await client.post(f"/cases/{case.id}/redeliver", headers=auth)
    assert today.status_code == 429 and "3 times in 24 hours" in today.json()["detail"]
    assert abs(int(today.headers["retry-after"]) - 19 * 3600) <= 60, today.headers


async def test_the_dentists_email_is_corrected_and_audited(client, session):
    case, auth = await _setup(session)
    url = f"/cases/{case.id}/contact"
    bad = await client.post(url, json={"email": "dentista@"}, headers=auth)
    assert bad.status_code == 422 and "not an e-mail address" in bad.json()["detail"]
    assert (await client.post(url, json={"email": "certo@example.com"}, headers=auth)).status_code == 204
    assert (await client.get(f"/cases/{case.id}", headers=auth)).json()["client_email"] == "certo@example.com"
    details = (await session.execute(select(AuditEntry.details).where(
        AuditEntry.case_id == case.id, AuditEntry.action == "case.contact"))).scalar_one()
    assert details == {"email_before": "dentista@example.com", "email": "certo@example.com"}
    assert (await client.post(url, json={"email": "x@example.com"})).status_code == 401
