"""A film of a case that reached review could not be downloaded (the upload host's one-off 403): the operator's
retry fetches only that film again, adds what it shows to the case and fuses the ranking again; the rest of the
case, and the reviewer's work on it, stays as it was."""

import uuid

from sqlalchemy import select

from fakes.jotform import FORM_ID, webhook_request
from raiox.intake import processing
from raiox.kit.db import session_scope
from raiox.models import Case, CaseEvent, CaseImage, CaseRanking, Fixture
from raiox.review.reasons import reason_text

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"


async def _state(case_id):
    async with session_scope() as session:
        case = await session.get(Case, case_id)
        images = (await session.execute(select(CaseImage).where(CaseImage.case_id == case_id)
                                        .order_by(CaseImage.position))).scalars().all()
        fixtures = (await session.execute(select(Fixture.id, Fixture.case_image_id).join(CaseImage)
                                          .where(CaseImage.case_id == case_id))).all()
        ranked = (await session.execute(select(CaseRanking.system_id).where(CaseRanking.case_id == case_id))).all()
        events = (await session.execute(select(CaseEvent.reason).where(CaseEvent.case_id == case_id)
                                        .order_by(CaseEvent.created_at))).scalars().all()
    return case, images, fixtures, ranked, events


async def test_a_film_that_failed_to_download_is_fetched_again_and_added_to_the_case(api, bearer, jotform, catalog,
                                                                                      scene_pngs, run_worker):
    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", scene_pngs[1])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    jotform.fail(f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/b.png", 403, times=1)  # one-off
    assert await processing.process_case(case_id) == "awaiting_review"
    case, (first, second), fixtures_before, ranked_before, _ = await _state(case_id)
    assert (first.status, second.status) == ("processed", "failed") and "403" in second.error
    assert fixtures_before and all(image == first.id for _, image in fixtures_before)

    retry = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "awaiting_review" and retry.json()["job_id"]
    await run_worker()

    case, (first, second), fixtures, ranked, events = await _state(case_id)
    assert case.status == "awaiting_review" and second.status == "processed" and second.error is None
    assert set(fixtures_before) < set(fixtures)  # the first film's implants kept (same rows), the second's added
    added = [f for f in fixtures if f.case_image_id == second.id]
    assert added and len(ranked) >= len(ranked_before)
    assert "films not downloaded or not analysed requested again" in events
    assert f"1 film(s) downloaded again, {len(added)} implant(s) found" in events
    again = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert again.status_code == 409 and "nothing to retry" in again.json()["detail"]


async def test_a_film_fetched_again_that_repeats_one_already_analysed_is_skipped_as_its_duplicate(
        api, bearer, jotform, catalog, scene_pngs, run_worker):
    """The dentist sent one film twice (two names); the copy's download failed once. Fetched again, it is the same
    bytes as the film analysed already: not analysed a second time (its implants would show twice to the reviewer and
    count twice in the ranking), `skipped` naming the film it repeats, as when both arrive at once."""
    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("copia-de-a.png", scene_pngs[0])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    jotform.fail(f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/copia-de-a.png", 403, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    _, (first, copy), fixtures_before, ranked_before, _ = await _state(case_id)
    assert (first.status, copy.status) == ("processed", "failed") and fixtures_before

    retry = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert retry.status_code == 200, retry.text
    await run_worker()
    case, (first, copy), fixtures, ranked, events = await _state(case_id)
    assert case.status == "awaiting_review" and first.status == "processed"
    assert (copy.status, copy.error) == ("skipped", "duplicate of a.png")
    assert copy.sha256 == first.sha256 and copy.storage_key == first.storage_key  # kept, viewable
    assert set(fixtures) == set(fixtures_before) and ranked == ranked_before  # nothing counted twice
    # the history counts the copy as skipped, not as a film analysed; the panel reads it so (pt-BR)
    assert "1 film(s) downloaded again, 0 implant(s) found" not in events
    recorded = "0 film(s) downloaded again and analysed, 1 duplicate(s) skipped, 0 implant(s) found"
    assert recorded in events
    assert reason_text(recorded, "pt_BR") == ("0 radiografias baixadas de novo e analisadas, 1 cópia de "
                                              "radiografia já analisada ignorada, 0 implantes encontrados")
    again = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert again.status_code == 409  # nothing left to fetch


async def test_a_film_refused_again_is_said_in_the_history_not_counted_as_zero_films_downloaded(
        api, jotform, catalog, scene_pngs):
    """The history of a retry whose films could not be downloaded again said "0 film(s) downloaded again, 0
    implant(s) found", as if nothing had been asked; it says how many could not be downloaded (in pt-BR in the
    panel), beside the films that were."""
    import io

    from PIL import Image

    from raiox.intake import refetch

    again = io.BytesIO()  # the second scene as another file (other bytes): no copy of b.png
    Image.open(io.BytesIO(scene_pngs[1])).save(again, format="PNG", compress_level=1)
    content = jotform.add_submission(FORM_ID, files={"radiografias": [
        ("a.png", scene_pngs[0]), ("b.png", scene_pngs[1]), ("c.png", again.getvalue())]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    folder = f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}"
    jotform.fail(f"{folder}/b.png", 403, times=3)  # the first run and both retries
    jotform.fail(f"{folder}/c.png", 404, times=1)  # the first run only
    assert await processing.process_case(case_id) == "awaiting_review"

    assert await refetch.refetch(case_id) == 1  # c.png got, b.png refused again
    _, (_, second, third), fixtures, _, events = await _state(case_id)
    assert (second.status, third.status) == ("failed", "processed") and "403" in second.error
    found = len([f for f in fixtures if f.case_image_id == third.id])
    assert events[-1] == (f"1 film(s) downloaded again, {found} implant(s) found, "
                          "1 film(s) could not be downloaded again")
    assert reason_text(events[-1], "pt_BR") == (f"1 radiografia baixada de novo, {found} implante"
                                                f"{'' if found == 1 else 's'} encontrado{'' if found == 1 else 's'}, "
                                                "1 não pôde ser baixada")

    assert await refetch.refetch(case_id) == 0  # b.png refused once more: nothing got
    case, (_, second, _), _, _, events = await _state(case_id)
    assert case.status == "awaiting_review" and second.status == "failed"
    assert events[-1] == "1 film(s) could not be downloaded again"
    assert not any(e and e.startswith("0 film(s) downloaded again") for e in events)
    assert reason_text(events[-1], "pt_BR") == "1 radiografia não pôde ser baixada de novo"


async def test_a_case_decided_while_its_film_is_fetched_stays_as_decided(api, bearer, jotform, catalog, scene_pngs):
    from raiox.intake import refetch

    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", scene_pngs[1])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    jotform.fail(f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/b.png", 404, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    async with session_scope() as session:
        (await session.get(Case, case_id)).status = "rejected"
    assert await refetch.refetch(case_id) == 0  # not awaiting review: nothing fetched
    refused = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert refused.status_code == 409 and "films that could not be downloaded" in refused.json()["detail"]
    _, (_, second), _, _, _ = await _state(case_id)
    assert second.status == "failed"


async def test_a_film_a_stopped_refetch_stored_but_never_analysed_is_analysed_by_the_next_run(
        api, bearer, jotform, catalog, scene_pngs, run_worker):
    """A refetch commits the film's bytes (`stored`) before its implants: a job stopped between the two (killed, the
    analysis or the database failing) left the film `stored`, never analysed, and every later retry skipped it as
    downloaded (the API's retry even answered 409, nothing to retry)."""
    from raiox.intake.download import new_client
    from raiox.kit.settings import get_settings

    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", scene_pngs[1])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    jotform.fail(f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/b.png", 403, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    _, (_, second), fixtures_before, _, _ = await _state(case_id)
    async with new_client(get_settings()) as http:  # the refetch's download, then the worker stops
        assert await processing.fetch_and_store(second, http) is not None
    _, (_, second), _, _, _ = await _state(case_id)
    assert second.status == "stored" and second.storage_key
    downloads = len([r for r in jotform.requests if r.path.endswith("/b.png")])

    retry = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert retry.status_code == 200, retry.text
    await run_worker()
    case, (first, second), fixtures, _, events = await _state(case_id)
    assert case.status == "awaiting_review" and (first.status, second.status) == ("processed", "processed")
    added = [f for f in fixtures if f.case_image_id == second.id]
    assert added and set(fixtures_before) < set(fixtures)
    assert f"1 film(s) downloaded again, {len(added)} implant(s) found" in events
    assert len([r for r in jotform.requests if r.path.endswith("/b.png")]) == downloads  # read back from storage
    again = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert again.status_code == 409


async def _approve(case_id):
    from raiox.cases.service import get_or_404, transition

    async with session_scope() as session:
        case = await get_or_404(session, case_id, for_update=True)
        await transition(session, case, "approved", actor="user:ana@example.com", reason=None)


async def test_a_film_fetched_while_the_case_is_approved_is_kept_not_analysed_and_the_decision_stands(
        api, bearer, jotform, catalog, scene_pngs):
    """The operator approves the case while its film is being downloaded again: the film's bytes are kept (viewable)
    and it becomes `skipped` with the reason, never `stored` for ever; no implant is added and the ranking the
    reviewer approved is not fused again; the history says what happened."""
    import asyncio

    from raiox.intake import refetch

    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", scene_pngs[1])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    path = f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/b.png"
    jotform.fail(path, 403, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    _, _, fixtures_before, ranked_before, _ = await _state(case_id)
    jotform.delay(path, 1.5)
    asked = len([r for r in jotform.requests if r.path == path])
    running = asyncio.create_task(refetch.refetch(case_id))
    while len([r for r in jotform.requests if r.path == path]) == asked:  # the download has started
        await asyncio.sleep(0.02)
    await _approve(case_id)
    assert await running == 1

    case, (first, second), fixtures, ranked, events = await _state(case_id)
    assert case.status == "approved" and first.status == "processed"
    assert second.status == "skipped" and second.storage_key and second.sha256 and second.width
    assert second.error == "not analysed: the case was decided (approved) before this film was analysed"
    assert set(fixtures) == set(fixtures_before) and ranked == ranked_before
    assert events[-1] == "1 film(s) downloaded again after the case was decided, 1 not analysed"
    refused = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert refused.status_code == 409


async def test_a_copy_fetched_while_the_case_is_approved_is_counted_as_a_copy(api, jotform, catalog, scene_pngs):
    """Two films fetched again while the operator approves the case, one a copy of a film analysed before: the
    history counts one film downloaded (kept, not analysed) and one copy skipped, not two films."""
    import asyncio

    from raiox.intake import refetch

    content = jotform.add_submission(FORM_ID, files={"radiografias": [
        ("a.png", scene_pngs[0]), ("b.png", scene_pngs[1]), ("copia-de-a.png", scene_pngs[0])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    folder = f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}"
    for name in ("b.png", "copia-de-a.png"):
        jotform.fail(f"{folder}/{name}", 403, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    jotform.delay(f"{folder}/b.png", 1.5)
    asked = len([r for r in jotform.requests if r.path == f"{folder}/b.png"])
    running = asyncio.create_task(refetch.refetch(case_id))
    while len([r for r in jotform.requests if r.path == f"{folder}/b.png"]) == asked:  # the download has started
        await asyncio.sleep(0.02)
    await _approve(case_id)
    assert await running == 1  # the copy is no film analysed

    case, (_, second, copy), _, _, events = await _state(case_id)
    assert case.status == "approved" and second.status == "skipped"
    assert (copy.status, copy.error) == ("skipped", "duplicate of a.png")
    assert events[-1] == "1 film(s) downloaded again after the case was decided, 1 not analysed, 1 duplicate(s) skipped"
    assert reason_text(events[-1], "pt_BR") == (
        "1 radiografia baixada de novo depois da decisão do caso, 1 não analisada, 1 cópia de radiografia "
        "já analisada ignorada (a decisão foi mantida)")


async def test_a_film_a_stopped_refetch_stored_is_settled_when_the_case_was_decided_meanwhile(
        api, jotform, catalog, scene_pngs):
    """The refetch stopped after storing the film (killed), the operator approved the case, then the job's retry
    runs: the film is `skipped` with the reason, not left `stored` for ever, and the case stays as approved."""
    from raiox.intake import refetch
    from raiox.intake.download import new_client
    from raiox.kit.settings import get_settings

    content = jotform.add_submission(FORM_ID, files={"radiografias": [("a.png", scene_pngs[0]),
                                                                      ("b.png", scene_pngs[1])]})
    case_id = uuid.UUID((await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))).json()
                        ["case_id"])
    jotform.fail(f"/uploads/{jotform.state.username}/{FORM_ID}/{content['id']}/b.png", 403, times=1)
    assert await processing.process_case(case_id) == "awaiting_review"
    _, (_, second), fixtures_before, _, _ = await _state(case_id)
    async with new_client(get_settings()) as http:
        assert await processing.fetch_and_store(second, http) is not None
    await _approve(case_id)
    assert await refetch.refetch(case_id) == 0
    case, (_, second), fixtures, _, _ = await _state(case_id)
    assert (case.status, second.status) == ("approved", "skipped") and second.storage_key
    assert second.error == "not analysed: the case was decided (approved) before this film was analysed"
    assert set(fixtures) == set(fixtures_before)
