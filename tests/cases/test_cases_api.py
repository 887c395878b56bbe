"""GET /cases, GET /cases/{id}, POST /cases/{id}/retry (bearer token)."""

import uuid

from sqlalchemy import text

from fakes.jotform import FORM_ID, webhook_request
from raiox.intake import processing
from raiox.kit.db import session_scope

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"


async def submit(api, jotform, files) -> str:
    content = jotform.add_submission(FORM_ID, files=files)
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    return response.json()["case_id"]


async def test_endpoints_need_a_bearer_token(api):
    for method, url in (("GET", "/cases"), ("GET", f"/cases/{uuid.uuid4()}"), ("POST", f"/cases/{uuid.uuid4()}/retry")):
        response = await api.request(method, url)
        assert response.status_code == 401, url
        response = await api.request(method, url, headers={"Authorization": "Bearer rx_nope"})
        assert response.status_code == 401, url


async def test_case_detail_has_images_implants_ranking_history(api, bearer, jotform, catalog, scene_pngs):
    case_id = await submit(api, jotform, {"radiografias": [("a b.png", scene_pngs[0]), ("nota.txt", b"hello")]})
    await processing.process_case(uuid.UUID(case_id))
    response = await api.get(f"/cases/{case_id}", headers=bearer)
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["status"] == "awaiting_review" and case["status_label"] == "Aguardando revisão"
    assert case["client_name"] == "Ana Souza" and case["fields"]["email"] == "ana@example.com"
    good, bad = case["images"]
    assert (good["filename"], good["status"], good["error"]) == ("a b.png", "processed", None)
    assert bad["status"] == "invalid" and "not an image" in bad["error"] and bad["implants"] == []
    implant = good["implants"][0]
    assert len(implant["box"]) == 4 and all(len(p) == 2 for p in implant["box"])
    assert 0 <= implant["confidence"] <= 1
    # what the readers saw, as POST /identify shows it (stored with the fixture)
    assert "external_hex" in implant["connection"] and abs(sum(implant["connection"].values()) - 1) < 0.01
    assert implant["features"] is None or all(abs(sum(p.values()) - 1) < 0.01 for p in implant["features"].values())
    assert implant["thread_turns"] is None or implant["thread_turns"] > 0
    candidates = implant["candidates"]
    assert candidates and {"system", "manufacturer", "name", "score"} <= candidates[0].keys()
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    assert case["ranking"][0]["system"] in catalog and "max" in case["ranking"][0]["evidence"]
    assert [(h["from_status"], h["to_status"]) for h in case["history"]] == [
        (None, "received"), ("received", "processing"), ("processing", "awaiting_review")]
    assert case["history"][-1]["actor"] == "system:worker"
    missing = await api.get(f"/cases/{uuid.uuid4()}", headers=bearer)
    assert missing.status_code == 404


async def test_case_detail_says_which_tooth_the_dentist_named(api, bearer, jotform):
    named = jotform.add_submission(FORM_ID, tooth="36")
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(named["id"])))
    case = (await api.get(f"/cases/{response.json()['case_id']}", headers=bearer)).json()
    assert case["tooth"] == "36" and case["fields"]["denteRegiao"] == "36"
    unnamed = (await api.get(f"/cases/{await submit(api, jotform, {})}", headers=bearer)).json()
    assert unnamed["tooth"] is None and "client_phone" in unnamed  # a field added, none renamed


async def test_list_filters_and_keyset_pages(api, bearer, jotform):
    ids = [await submit(api, jotform, {}) for _ in range(5)]
    async with session_scope() as session:
        await session.execute(text("UPDATE cases SET status = 'failed' WHERE id = :id"), {"id": ids[0]})
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/cases", params=params, headers=bearer)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    failed = (await api.get("/cases", params={"status": "failed"}, headers=bearer)).json()
    assert [i["id"] for i in failed["items"]] == [ids[0]] and failed["next"] is None
    sid = failed["items"][0]["jotform_submission_id"]
    by_sid = (await api.get("/cases", params={"submission_id": sid}, headers=bearer)).json()
    assert [i["id"] for i in by_sid["items"]] == [ids[0]]
    assert (await api.get("/cases", params={"status": "nope"}, headers=bearer)).status_code == 400
    assert (await api.get("/cases", params={"cursor": "%%%"}, headers=bearer)).status_code == 400


async def test_retry_requeues_failed_cases_only(api, bearer, jotform, catalog, scene_pngs, settings_env):
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    conflict = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert conflict.status_code == 409
    jotform.fail("/uploads/", 404, times=1, body=b"<html>gone</html>")
    assert await processing.process_case(uuid.UUID(case_id)) == "failed"
    response = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "received"
    async with session_scope() as session:
        jobs = (await session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'process_case'"
                                           " AND args->>'case_id' = :id"), {"id": case_id})).scalar_one()
        image_status = (await session.execute(text("SELECT status FROM case_images WHERE case_id = :id"),
                                              {"id": case_id})).scalar_one()
        audit = (await session.execute(text("SELECT actor, details FROM audit_log WHERE action = 'case.retry' "
                                            "AND case_id = :id"), {"id": case_id})).all()
    assert jobs == 2 and image_status == "pending"
    assert audit == [("token:tests", {})]  # the refused (409) retry wrote nothing
    assert await processing.process_case(uuid.UUID(case_id)) == "awaiting_review"
    history = (await api.get(f"/cases/{case_id}", headers=bearer)).json()["history"]
    assert ("failed", "received", "token:tests") in [(h["from_status"], h["to_status"], h["actor"]) for h in history]
