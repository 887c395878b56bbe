"""Processing against the fake Jotform upload host: downloads, broken files, outages, idempotence."""

import json
import uuid

import pytest
import structlog.testing
from sqlalchemy import func, select

from fakes.jotform import FORM_ID, webhook_request
from raiox.intake import processing
from raiox.kit.db import session_scope
from raiox.models import Case, CaseImage, CaseRanking, Fixture, FixtureResult

WEBHOOK = "/webhooks/jotform?token=test-webhook-secret"


async def submit(api, jotform, files: dict) -> uuid.UUID:
    content = jotform.add_submission(FORM_ID, files=files)
    response = await api.post(WEBHOOK, **webhook_request(jotform.webhook_fields(content["id"])))
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["case_id"])


async def load(case_id: uuid.UUID):
    async with session_scope() as session:
        case = await session.get(Case, case_id)
        images = (await session.execute(select(CaseImage).where(CaseImage.case_id == case_id)
                                        .order_by(CaseImage.position))).scalars().all()
        fixtures = (await session.execute(select(func.count()).select_from(Fixture)
                                          .join(CaseImage).where(CaseImage.case_id == case_id))).scalar_one()
        results = (await session.execute(select(func.count()).select_from(FixtureResult).join(Fixture)
                                         .join(CaseImage).where(CaseImage.case_id == case_id))).scalar_one()
        ranking = (await session.execute(select(CaseRanking).where(CaseRanking.case_id == case_id)
                                         .order_by(CaseRanking.rank))).scalars().all()
    return case, images, fixtures, results, ranking


async def test_case_goes_from_webhook_to_awaiting_review(api, jotform, catalog, scene_pngs, database_url):
    files = {"radiografias": [("raio x; paciente 1, frente.png", scene_pngs[0]),
                              ("raio x (2).png", scene_pngs[1]), ("cópia & igual.png", scene_pngs[0])]}
    case_id = await submit(api, jotform, files)
    assert await processing.process_case(case_id) == "awaiting_review"
    case, images, fixtures, results, ranking = await load(case_id)
    assert case.status == "awaiting_review"
    # the same film sent twice: stored once (same content address), analysed once, the copy says which it repeats
    assert [i.status for i in images] == ["processed", "processed", "skipped"]
    assert images[2].error == "duplicate of raio x; paciente 1, frente.png" and images[2].width is None
    assert images[0].sha256 == images[2].sha256 != images[1].sha256  # same bytes, same content address
    assert images[0].storage_key == images[2].storage_key and images[0].width > 0
    assert fixtures >= 2 and results >= fixtures
    assert all(str(images[2].id) not in r.evidence["images"] for r in ranking)  # its implants counted once
    async with session_scope() as session:
        assert (await session.execute(select(func.count()).select_from(Fixture)
                                      .where(Fixture.case_image_id == images[2].id))).scalar_one() == 0
    async with session_scope() as session:  # each fixture keeps the connection reader's probabilities
        reads = (await session.execute(select(Fixture.connection).join(CaseImage)
                                       .where(CaseImage.case_id == case_id))).scalars().all()
    assert len(reads) == fixtures and all(len(r) == 9 and abs(sum(r) - 1) < 1e-2 for r in reads)
    async with session_scope() as session:  # ... and the feature reader's (the default embedder's vectors)
        bodies = (await session.execute(select(Fixture.features).join(CaseImage)
                                        .where(CaseImage.case_id == case_id))).scalars().all()
    from raiox.vision.features import READ

    assert len(bodies) == fixtures and all(set(b) == set(READ) for b in bodies)
    assert all(abs(sum(p) - 1) < 1e-2 for b in bodies for p in b.values())
    assert ranking and [r.rank for r in ranking] == list(range(1, len(ranking) + 1))
    assert all(r.system_id in catalog for r in ranking)
    assert ranking[0].score >= ranking[-1].score and ranking[0].evidence["support"] >= 1
    downloads = [r for r in jotform.requests if r.path.startswith("/uploads/")]
    assert len(downloads) == 3
    assert all(r.query.get("apiKey") == ["test-jotform-key"] and r.headers.get("APIKEY") == "test-jotform-key"
               for r in downloads)
    from raiox.kit.storage import get_storage

    assert await get_storage().get(images[1].storage_key) == scene_pngs[1]


async def test_rerun_replaces_results_without_duplicates(api, jotform, catalog, scene_pngs):
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0]), ("b.png", scene_pngs[1])]})
    await processing.process_case(case_id)
    _, _, fixtures, results, ranking = await load(case_id)
    async with session_scope() as session:  # as if the worker died after committing, before acknowledging
        (await session.get(Case, case_id)).status = "processing"
    assert await processing.process_case(case_id, attempt=1) == "awaiting_review"
    _, images, fixtures2, results2, ranking2 = await load(case_id)
    assert (fixtures2, results2) == (fixtures, results)
    assert [(r.system_id, round(r.score, 5)) for r in ranking2] == [(r.system_id, round(r.score, 5)) for r in ranking]
    assert len([r for r in jotform.requests if r.path.startswith("/uploads/")]) == 2  # stored: not fetched again


async def test_bad_files_mark_their_image_and_the_case_proceeds(api, jotform, catalog, scene_pngs, settings_env):
    settings_env(download_max_bytes=str(len(scene_pngs[0]) + 10))
    big = scene_pngs[0] + b"\0" * 100
    files = {"radiografias": [("boa.png", scene_pngs[0]), ("laudo.txt", b"just some text, not an image"),
                              ("quebrada.png", scene_pngs[0][:300]), ("enorme.png", big),
                              ("login.png", b"<!DOCTYPE html><html><body>Login</body></html>")]}
    case_id = await submit(api, jotform, files)
    missing = jotform.state.submissions
    sid = next(iter(missing))
    missing[sid]["answers"]["10"]["answer"].append(jotform.upload_url(FORM_ID, sid, "sumiu.png"))
    async with session_scope() as session:  # a 6th file the host does not have (404)
        session.add(CaseImage(case_id=case_id, position=5, source_url=jotform.upload_url(FORM_ID, sid, "sumiu.png"),
                              filename="sumiu.png"))
    assert await processing.process_case(case_id) == "awaiting_review"
    _, images, fixtures, _, ranking = await load(case_id)
    by_name = {i.filename: i for i in images}
    assert by_name["boa.png"].status == "processed" and fixtures >= 1 and ranking
    assert by_name["laudo.txt"].status == "invalid" and by_name["laudo.txt"].error
    assert by_name["quebrada.png"].status == "invalid" and by_name["quebrada.png"].error
    assert by_name["enorme.png"].status == "failed" and "too large" in by_name["enorme.png"].error
    assert by_name["login.png"].status == "failed" and "HTML page" in by_name["login.png"].error
    assert by_name["sumiu.png"].status == "failed" and "404" in by_name["sumiu.png"].error


async def test_require_login_without_key_is_an_error_not_an_image(api, jotform, catalog, scene_pngs, settings_env):
    jotform.require_login = True
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    settings_env(jotform_api_key="wrong-key")
    assert await processing.process_case(case_id) == "failed"
    case, images, *_ = await load(case_id)
    assert images[0].status == "failed" and "HTML page" in images[0].error
    assert "no image could be downloaded" in case.failure_reason


async def test_upload_host_down_then_back(api, jotform, catalog, scene_pngs, settings_env):
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0]), ("b.png", scene_pngs[1])]})
    jotform.fail("/uploads/", 503, times=2)  # brief outage: absorbed by the download retries
    assert await processing.process_case(case_id) == "awaiting_review"

    case_id = await submit(api, jotform, {"radiografias": [("c.png", scene_pngs[1])]})
    jotform.fail("/uploads/", 503, times=100)  # long outage: the job fails (and will be retried)
    try:
        await processing.process_case(case_id)
        raise AssertionError("expected the outage to raise")
    except Exception as exc:
        assert "503" in str(exc)
    case, images, *_ = await load(case_id)
    assert case.status == "processing" and images[0].status == "pending"  # nothing lost, nothing marked
    jotform.state.failures.clear()
    assert await processing.process_case(case_id, attempt=1) == "awaiting_review"


async def test_worker_retries_then_marks_failed_with_reason(api, jotform, catalog, scene_pngs, settings_env,
                                                            run_worker):
    settings_env(job_retries="1", job_retry_wait_s="0")
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    jotform.fail("/uploads/", 503, times=1000)
    await run_worker()
    case, images, *_ = await load(case_id)
    assert case.status == "failed"
    assert "after 2 attempts" in case.failure_reason and "503" in case.failure_reason
    assert images[0].status == "failed" and images[0].error == case.failure_reason  # never stored: says why


async def test_worker_processes_a_case_end_to_end(api, jotform, catalog, scene_pngs, run_worker):
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    await run_worker()
    case, images, fixtures, *_ = await load(case_id)
    assert case.status == "awaiting_review" and images[0].status == "processed" and fixtures >= 1
    assert json.dumps(case.payload).find("test-webhook-secret") == -1


async def test_storage_outage_is_retried_not_dropped(api, jotform, catalog, scene_pngs, monkeypatch):
    import pytest

    from raiox.kit.errors import ServiceUnavailable
    from raiox.kit.storage import get_storage

    real = get_storage()

    class FlakyStorage:
        down = True

        async def put(self, key, data, content_type="application/octet-stream"):
            if self.down:
                raise ServiceUnavailable("object storage unreachable: connection refused")
            await real.put(key, data, content_type)

        async def get(self, key):
            return await real.get(key)

        async def exists(self, key):
            if self.down:
                raise ServiceUnavailable("object storage unreachable: connection refused")
            return await real.exists(key)

    flaky = FlakyStorage()
    monkeypatch.setattr(processing, "get_storage", lambda: flaky)
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    with pytest.raises(ServiceUnavailable):
        await processing.process_case(case_id)
    case, images, *_ = await load(case_id)
    assert case.status == "processing" and images[0].status == "pending" and images[0].storage_key is None
    flaky.down = False
    assert await processing.process_case(case_id, attempt=1) == "awaiting_review"
    _, images, fixtures, *_ = await load(case_id)
    assert images[0].status == "processed" and fixtures >= 1


async def test_a_fixture_located_the_wrong_way_round_is_stored_the_way_it_was_searched(api, jotform, catalog,
                                                                                       scene_pngs, monkeypatch):
    """The localiser's platform-end call is overruled by the catalog (`search_fixture`): the fixture stored for
    the review panel carries the box, embedding and connection read that were searched."""
    import numpy as np

    import raiox.vision
    from raiox.synth import demo_catalog, render_scene
    from raiox.vision.evaluate import platform_ok

    real = raiox.vision.analyze

    def wrong_way_round(image, embedder, boxes=None, read_connection=True):
        return [f.reversed() for f in real(image, embedder, boxes, read_connection)]

    monkeypatch.setattr(raiox.vision, "analyze", wrong_way_round)
    monkeypatch.setattr(raiox.vision.ranking, "ENDS_SURE", 3.0)  # above any end evidence: the fixture is checked
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    assert await processing.process_case(case_id) == "awaiting_review"
    truth = render_scene([demo_catalog()[0].spec], seed=0).boxes[0]  # scene_pngs[0]
    async with session_scope() as session:
        stored = (await session.execute(
            select(Fixture).join(CaseImage).where(CaseImage.case_id == case_id))).scalars().all()
    assert len(stored) == 1
    assert platform_ok(np.array(stored[0].box), truth)


REFUSED = ["file:///etc/passwd", "ftp://www.jotform.com/x.png", "http://[::1/x.png"]  # the last: unparsable


@pytest.mark.parametrize("kind", ["refused_urls", "no_uploads", "broken_images"])
async def test_a_case_without_a_usable_image_fails_with_its_reason_and_can_be_retried(api, jotform, bearer, kind):
    broken = [("laudo.png", b"just some text, not an image"), ("vazio.png", b"")]
    content = jotform.add_submission(FORM_ID, files={"radiografias": broken})
    fields = jotform.webhook_fields(content["id"])
    raw = json.loads(fields["rawRequest"])
    if kind == "refused_urls":
        raw["radiografias"] = REFUSED
    fields["rawRequest"] = "{}" if kind == "no_uploads" else json.dumps(raw)
    response = await api.post(WEBHOOK, **webhook_request(fields))
    assert response.status_code == 200, response.text
    case_id = uuid.UUID(response.json()["case_id"])
    with structlog.testing.capture_logs() as logs:
        assert await processing.process_case(case_id) == "failed"
    case, images, fixtures, _, ranking = await load(case_id)
    assert case.status == "failed" and not ranking
    logged = json.dumps(logs, default=str)
    assert "case_without_usable_image" in logged
    for image in images:  # the reason names each file for the operator; the logs never do (names name patients)
        assert image.filename and image.filename in case.failure_reason
        assert image.filename == "upload" or image.filename not in logged  # "upload": an unparsable URL's stand-in
    if kind == "refused_urls":  # recorded, refused without any request, each with its reason
        assert [i.source_url for i in images] == REFUSED and {i.status for i in images} == {"failed"}
        assert all("not an http(s) URL" in i.error for i in images)
        assert case.failure_reason.startswith("no image could be downloaded (")
        assert "'file:///… (upload" in case.failure_reason and "'ftp://www.jotform.com/… (upload" in case.failure_reason
        assert "'an unreadable URL (upload" in case.failure_reason and "::1" not in case.failure_reason
        assert not [r for r in jotform.requests if r.path.startswith("/uploads/")]
    elif kind == "no_uploads":
        assert images == [] and case.failure_reason == "no file submitted"
    else:
        assert [i.status for i in images] == ["invalid", "invalid"]
        assert case.failure_reason.startswith("no usable image (")
        assert "laudo.png: " in case.failure_reason and "vazio.png: " in case.failure_reason
    retry = await api.post(f"/cases/{case_id}/retry", headers=bearer)
    assert retry.status_code == 200 and retry.json()["status"] == "received"
    assert await processing.process_case(case_id, attempt=1) == "failed"
    async with session_scope() as session:
        assert (await session.execute(select(func.count()).select_from(Case))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(CaseImage))).scalar_one() == len(images)


async def test_a_stored_image_gone_from_storage_is_fetched_again(api, jotform, catalog, scene_pngs):
    """Objects lost or storage switched: a re-run downloads the image again instead of failing on it."""
    from raiox.kit.storage import get_storage

    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    assert await processing.process_case(case_id) == "awaiting_review"
    _, images, fixtures, *_ = await load(case_id)
    path = get_storage().root / images[0].storage_key
    path.unlink()
    async with session_scope() as session:
        (await session.get(Case, case_id)).status = "received"
    assert await processing.process_case(case_id, attempt=1) == "awaiting_review"
    _, images, fixtures2, *_ = await load(case_id)
    assert path.is_file() and fixtures2 == fixtures and images[0].status == "processed"
    assert len([r for r in jotform.requests if r.path.startswith("/uploads/")]) == 2  # fetched a second time


async def test_a_stored_image_gone_and_its_upload_gone_fails_the_case_not_stuck(api, jotform, catalog, scene_pngs,
                                                                                settings_env, run_worker, bearer):
    """The job must not mistake a missing stored object for a deleted case (it used to end the job and leave the
    case `processing` for good, where retry is refused): the case ends failed with the reason, retry allowed."""
    from raiox.kit.storage import get_storage

    settings_env(job_retries="0", job_retry_wait_s="0")
    case_id = await submit(api, jotform, {"radiografias": [("a.png", scene_pngs[0])]})
    await run_worker()
    _, images, *_ = await load(case_id)
    (get_storage().root / images[0].storage_key).unlink()
    jotform.fail("/uploads/", 404, times=1000)  # and the upload is gone from Jotform too
    assert (await api.post(f"/cases/{case_id}/retry", headers=bearer)).status_code == 409  # awaiting review
    async with session_scope() as session:
        (await session.get(Case, case_id)).status = "failed"
    assert (await api.post(f"/cases/{case_id}/retry", headers=bearer)).status_code in (200, 202)
    await run_worker()
    case, images, *_ = await load(case_id)
    assert case.status == "failed" and "404" in case.failure_reason
    assert images[0].storage_key is None and images[0].status == "failed"
    assert (await api.post(f"/cases/{case_id}/retry", headers=bearer)).status_code in (200, 202)
