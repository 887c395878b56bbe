"""A case awaiting review read again with the current models (POST /cases/{id}/reread): the real embedder and
readers, the real catalog search, the case's ranking fused again; boxes, numbers and marks kept, removals too."""

import uuid

import numpy as np
from review_helpers import add_case, add_scene_film
from sqlalchemy import delete, select

from raiox.kit.tokens import create_token
from raiox.models import AuditEntry, CaseStatus, Fixture, FixtureResult


async def _stale_fixture(session, image, box, index: int = 0, manual: bool = False) -> Fixture:
    """An implant read by an earlier model (raiox-v1, a made-up vector) whose results say demo-005."""
    fixture = Fixture(case_image_id=image.id, index=index, box=box, confidence=0.81, model_id="raiox-v1",
                      embedding=np.eye(1, 512, index, dtype=np.float32)[0], manual=manual)
    session.add(fixture)
    await session.flush()
    session.add(FixtureResult(fixture_id=fixture.id, rank=1, system_id="demo-005", score=0.5))
    await session.flush()
    return fixture


async def test_reread_embeds_every_implant_again_and_keeps_boxes_marks_and_removals(client, session, catalog, scene):
    from raiox.vision import get_embedder

    case = await add_case(session, candidates=[("demo-005", 0.5)])  # film 1: one raiox-v1 implant, ranked demo-005
    image = await add_scene_film(session, case, scene)
    truth = np.asarray(scene.boxes[0], dtype=float).round(2).tolist()
    kept = await _stale_fixture(session, image, truth, manual=True)  # the operator's mark, read by the old model
    overhang = await _stale_fixture(session, image, [[-6, 20], [24, 20], [24, 140], [-6, 140]], index=1)
    removed = await _stale_fixture(session, image, [[60, 30], [90, 30], [90, 150], [60, 150]], index=2)
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    assert (await client.delete(f"/cases/{case.id}/fixtures/{removed.id}", headers=auth)).status_code == 204

    response = await client.post(f"/cases/{case.id}/reread", headers=auth)
    assert response.status_code == 200, response.text
    model = get_embedder().model_id
    done = response.json()
    assert (done["case_id"], done["model_id"], done["implants"]) == (str(case.id), model, 3)
    assert "client_name" not in response.text and "Ana" not in response.text  # the `review` scope reads no dentist
    detail = (await client.get(f"/cases/{case.id}", headers=auth)).json()
    assert done["ranking"] == detail["ranking"]
    implants = {i["id"]: i for film in detail["images"] for i in film["implants"]}
    assert model != "raiox-v1" and {i["model_id"] for i in implants.values()} == {model}
    assert len(implants) == 3 and str(removed.id) not in implants  # removed stays removed, nothing located anew
    mark = implants[str(kept.id)]
    assert mark["manual"] is True and mark["box"] == truth and mark["confidence"] == 0.81
    assert mark["candidates"][0]["system"] == "demo-004"  # the implant the scene shows, now that it is read
    assert mark["connection"] and mark["features"]  # the readers ran on it too
    assert implants[str(overhang.id)]["box"][0] == [-6, 20]  # a box over the film's edge is read as stored
    assert detail["status"] == CaseStatus.awaiting_review
    assert {r["system"] for r in detail["ranking"]} == {"demo-004", "demo-005"}  # fused from the new results

    stored = (await session.execute(select(Fixture).where(Fixture.id == kept.id))).scalar_one()
    await session.refresh(stored)
    assert not np.allclose(stored.embedding, np.eye(1, 512, 0)[0])
    entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "case.reread"))).scalar_one()
    assert entry.case_id == case.id and entry.actor == "token:ops"
    assert entry.details == {"implants": 3, "models_before": ["raiox-v1"], "model": model}


async def test_reread_is_refused_for_cases_it_cannot_apply_to(client, session, catalog, scene):
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    approved = await add_case(session, candidates=[("demo-005", 0.5)], status=CaseStatus.approved)
    refused = await client.post(f"/cases/{approved.id}/reread", headers=auth)
    assert refused.status_code == 409 and "not awaiting review" in refused.json()["detail"]

    empty = await add_case(session, candidates=[("demo-005", 0.5)])
    await session.execute(delete(Fixture))
    refused = await client.post(f"/cases/{empty.id}/reread", headers=auth)
    assert refused.status_code == 409 and "no implant" in refused.json()["detail"]

    assert (await client.post(f"/cases/{uuid.uuid4()}/reread", headers=auth)).status_code == 404
    assert (await client.post(f"/cases/{empty.id}/reread")).status_code == 401
    reader = {"Authorization": f"Bearer {await create_token(session, 'reader', scopes=['cases'])}"}
    forbidden = await client.post(f"/cases/{empty.id}/reread", headers=reader)
    assert forbidden.status_code == 403 and "review" in forbidden.text
    actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert "case.reread" not in actions


async def test_reread_changes_nothing_while_the_catalog_lacks_the_current_models_vectors(client, session):
    from review_helpers import add_system

    await add_system(session, "demo-005", "Synthetica", "DEMO-005", seed=1)  # vectors of raiox-v1 only
    case = await add_case(session, candidates=[("demo-005", 0.5)])
    auth = {"Authorization": f"Bearer {await create_token(session, 'ops')}"}
    refused = await client.post(f"/cases/{case.id}/reread", headers=auth)
    assert refused.status_code == 409 and "no vectors of" in refused.json()["detail"]
    assert "raiox catalog reindex" in refused.json()["detail"]
    detail = (await client.get(f"/cases/{case.id}", headers=auth)).json()
    implant = detail["images"][0]["implants"][0]
    assert implant["model_id"] == "raiox-v1" and [c["system"] for c in implant["candidates"]] == ["demo-005"]
    assert [r["system"] for r in detail["ranking"]] == ["demo-005"]


async def test_an_implant_removed_while_the_films_are_read_is_not_stored_again(session, catalog, scene):
    from raiox.review import reread

    case = await add_case(session, candidates=[("demo-005", 0.5)])
    image = await add_scene_film(session, case, scene)
    gone = await _stale_fixture(session, image, np.asarray(scene.boxes[0]).round(2).tolist())
    readings = await reread.read(await reread.films(session, case.id))
    await session.execute(delete(Fixture).where(Fixture.id == gone.id))  # the operator removed it meanwhile

    assert await reread.store(session, case.id, readings, actor="user:ana@example.com") == 1
    left = (await session.execute(select(Fixture.id))).scalars().all()
    assert gone.id not in left and len(left) == 1


async def test_cli_reads_again_the_cases_awaiting_review_that_an_earlier_model_read(committed):
    import asyncio

    from review_helpers import add_system, reindex_as
    from typer.testing import CliRunner

    from raiox.cli import app
    from raiox.kit.db import session_scope
    from raiox.models import CaseImage
    from raiox.vision import get_embedder

    async with session_scope() as session:
        await add_system(session, "neo-cm", "Neodent", "Grand Morse", seed=1)
        stale = await add_case(session, candidates=[("neo-cm", 0.9)], images=2)
        closed = await add_case(session, candidates=[("neo-cm", 0.9)], status=CaseStatus.approved)

    def cli(*args: str):  # the command runs its own event loop: in a thread, beside the test's
        return asyncio.to_thread(CliRunner().invoke, app, ["cases", "reread", *args], catch_exceptions=False)

    assert (await cli()).exit_code == 2 and (await cli("--stale", "--case", str(stale.id))).exit_code == 2
    early = await cli("--stale")  # before the catalog was reindexed: nothing to search, nothing changed
    assert early.exit_code == 1 and "no vectors of" in early.stderr and early.stdout == ""
    async with session_scope() as session:
        await reindex_as(session, get_embedder().model_id)
    listed = await cli("--stale", "--dry-run")
    assert listed.exit_code == 0 and listed.stdout.split()[0] == str(stale.id)
    assert str(closed.id) not in listed.stdout and "would read 1 case(s) again, 2 implant(s)" in listed.stdout
    done = await cli("--stale")
    assert done.exit_code == 0 and "read 1 case(s) again, 2 implant(s)" in done.stdout, done.stdout
    async with session_scope() as session:
        models = (await session.execute(select(CaseImage.case_id, Fixture.model_id).join(CaseImage))).all()
    assert sorted(m for c, m in models if c == stale.id) == [get_embedder().model_id] * 2
    assert [m for c, m in models if c == closed.id] == ["raiox-v1"]
    async with session_scope() as session:
        rereads = (await session.execute(select(AuditEntry.case_id, AuditEntry.actor).where(
            AuditEntry.action == "case.reread"))).all()
    assert rereads == [(stale.id, "cli:raiox cases reread")]  # the dry run and the early refusal wrote nothing
    assert "would read 0 case(s) again" in (await cli("--stale", "--dry-run")).stdout
    for args in (("--case", str(closed.id)), ("--case", str(closed.id), "--dry-run")):  # checked alike
        refused = await cli(*args)
        assert refused.exit_code == 1 and "not awaiting review" in refused.stderr
        assert "read 0 case(s) again, 0 implant(s); 1 skipped" in refused.stdout
