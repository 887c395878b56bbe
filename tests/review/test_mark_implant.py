"""The operator marks an implant the analysis missed (or boxed badly) and removes one that is not an implant:
POST /cases/{id}/images/{image_id}/fixtures, DELETE /cases/{id}/fixtures/{fixture_id} — real embedder, real
catalog search, the case's ranking fused again, every change audited."""

import uuid

import numpy as np
from review_helpers import add_case, add_scene_film
from sqlalchemy import select

from raiox.kit.tokens import create_token
from raiox.models import AuditEntry, CaseStatus, Fixture


def _bounds(scene) -> list[float]:
    corners = np.asarray(scene.boxes[0], dtype=float)
    return [*corners.min(axis=0).round(1).tolist(), *corners.max(axis=0).round(1).tolist()]


async def _audit(session, case_id) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.id)
    return list((await session.execute(query)).scalars())


async def test_a_marked_implant_is_searched_stored_and_ranks_the_case(client, session, catalog, scene):
    case = await add_case(session, candidates=[("demo-005", 0.5)])  # film 1: one located fixture ranked demo-005
    image = await add_scene_film(session, case, scene)
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    url = f"/cases/{case.id}/images/{image.id}/fixtures"

    marked = await client.post(url, json={"box": _bounds(scene)}, headers=auth)
    assert marked.status_code == 201, marked.text
    implant = marked.json()
    assert implant["manual"] is True and implant["confidence"] == 1.0 and implant["index"] == 0
    assert implant["model_id"] and len(implant["box"]) == 4
    assert [c["rank"] for c in implant["candidates"]] == [1, 2]
    assert {c["system"] for c in implant["candidates"]} == {"demo-004", "demo-005"}
    assert implant["candidates"][0]["system"] == "demo-004"

    again = await client.post(url, json={"box": _bounds(scene)}, headers=auth)  # a double click: stored once
    assert again.status_code == 201 and again.json()["id"] == implant["id"]
    detail = (await client.get(f"/cases/{case.id}", headers=auth)).json()
    film = next(i for i in detail["images"] if i["id"] == str(image.id))
    assert [i["id"] for i in film["implants"]] == [implant["id"]]
    fused = {r["system"]: r for r in detail["ranking"]}
    assert set(fused) == {"demo-004", "demo-005"}  # both films' evidence, fused again
    assert fused["demo-004"]["evidence"]["images"] == [str(image.id)]  # the marked film's evidence

    first_film = next(i for i in detail["images"] if i["id"] != str(image.id))
    located = first_film["implants"][0]["id"]
    removed = await client.delete(f"/cases/{case.id}/fixtures/{located}", headers=auth)
    assert removed.status_code == 204, removed.text
    detail = (await client.get(f"/cases/{case.id}", headers=auth)).json()
    assert [r["system"] for r in detail["ranking"]][0] == "demo-004"  # only the marked implant's evidence is left
    assert all(r["evidence"]["images"] == [str(image.id)] for r in detail["ranking"])
    assert (await client.delete(f"/cases/{case.id}/fixtures/{located}", headers=auth)).status_code == 404

    audit = await _audit(session, case.id)
    assert [a.action for a in audit] == ["case.fixture_add", "case.fixture_remove"]
    metrics = (await client.get("/metrics", headers=auth)).text
    assert 'raiox_review_actions_total{action="case.fixture_add"}' in metrics
    assert audit[0].actor == "token:ops" and audit[0].target == implant["id"]
    assert audit[0].details["film"] == 2 and audit[0].details["first"].startswith("DEMO-004")
    assert audit[1].details["manual"] is False and audit[1].details["film"] == 1


async def test_bad_marks_are_refused_and_nothing_is_stored(client, session, catalog, scene):
    case = await add_case(session, candidates=[("demo-005", 0.5)])
    image = await add_scene_film(session, case, scene)
    other = await add_case(session, candidates=[("demo-005", 0.5)])
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    url = f"/cases/{case.id}/images/{image.id}/fixtures"
    height, width = scene.image.shape[:2]
    for body, status, says in (
            ({"box": [10, 10, 5, 50]}, 422, "x1 must exceed x0"),
            ({"box": [0, 0, 10, "x"]}, 422, "finite numbers"),
            ({"box": [0, 0, width + 40, 40]}, 422, f"outside the {width}x{height} image"),
            ({"box": [20, 20, 24, 90]}, 422, "under 8 pixels"),
            ({"box": [20, 20, 60, 90], "score": 1}, 422, "score"),
    ):
        refused = await client.post(url, json=body, headers=auth)
        assert refused.status_code == status and says in refused.text, (body, refused.text)
    assert (await client.post(url, json={"box": _bounds(scene)})).status_code == 401
    elsewhere = f"/cases/{other.id}/images/{image.id}/fixtures"
    assert (await client.post(elsewhere, json={"box": _bounds(scene)}, headers=auth)).status_code == 404
    unknown = f"/cases/{case.id}/images/{uuid.uuid4()}/fixtures"
    assert (await client.post(unknown, json={"box": _bounds(scene)}, headers=auth)).status_code == 404
    manual = (await session.execute(select(Fixture).where(Fixture.manual.is_(True)))).scalars().all()
    assert manual == [] and await _audit(session, case.id) == []


async def test_only_a_case_awaiting_review_takes_marks_or_removals(client, session, catalog, scene):
    case = await add_case(session, candidates=[("demo-005", 0.5)], status=CaseStatus.approved)
    image = await add_scene_film(session, case, scene)
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    marked = await client.post(f"/cases/{case.id}/images/{image.id}/fixtures", json={"box": _bounds(scene)},
                               headers=auth)
    assert marked.status_code == 409 and "not awaiting review" in marked.json()["detail"]
    fixture = (await session.execute(select(Fixture))).scalars().first()
    removed = await client.delete(f"/cases/{case.id}/fixtures/{fixture.id}", headers=auth)
    assert removed.status_code == 409

    pending = await add_case(session, candidates=[("demo-005", 0.5)])
    unread = await add_scene_film(session, pending, scene)
    unread.status = "invalid"
    await session.flush()
    refused = await client.post(f"/cases/{pending.id}/images/{unread.id}/fixtures", json={"box": _bounds(scene)},
                                headers=auth)
    assert refused.status_code == 409 and "not analysed" in refused.json()["detail"]


async def test_a_film_takes_a_bounded_number_of_marks_and_a_nudged_repeat_is_the_same_mark(
        client, session, catalog, scene, monkeypatch):
    from raiox.review import marks

    case = await add_case(session, candidates=[("demo-005", 0.5)])
    image = await add_scene_film(session, case, scene)
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    url = f"/cases/{case.id}/images/{image.id}/fixtures"
    first = (await client.post(url, json={"box": _bounds(scene)}, headers=auth)).json()
    x0, y0, x1, y1 = _bounds(scene)
    nudged = await client.post(url, json={"box": [x0 + 1, y0 + 1, x1 + 1, y1]}, headers=auth)
    assert nudged.status_code == 201 and nudged.json()["id"] == first["id"]  # the same implant, fitted alike
    monkeypatch.setattr(marks, "MAX_MARKS", 1)
    elsewhere = await client.post(url, json={"box": [5, 5, 60, 120]}, headers=auth)
    assert elsewhere.status_code == 422 and "at most 1" in elsewhere.json()["detail"]
