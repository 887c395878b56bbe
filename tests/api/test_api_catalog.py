"""GET /implants, POST /identify, GET /metrics: bearer tokens, shapes, storage only when asked."""

import hashlib
import io
import json

import pytest
from PIL import Image


@pytest.mark.parametrize("path", ["/implants", "/metrics"])
async def test_routes_need_a_valid_bearer_token(client, path):
    missing = await client.get(path)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    wrong = await client.get(path, headers={"Authorization": "Bearer rx_not-a-token"})
    assert wrong.status_code == 401
    basic = await client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


async def test_identify_needs_a_token(client, reference_pngs):
    response = await client.post("/identify", files={"image": ("x.png", reference_pngs["demo-004"][0], "image/png")})
    assert response.status_code == 401


async def test_implants_lists_systems_with_counts_and_filters(client, auth, catalog, session):
    from raiox.catalog import repository

    await repository.upsert_system(session, "acme-empty", "Acme", "Empty", {"body_shape": "tapered"})
    body = (await client.get("/implants", headers=auth)).json()
    assert body["total"] == 3 and body["model_id"]
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id["demo-004"]["reference_images"] == 2 and by_id["demo-004"]["embedded"] == 2
    assert by_id["demo-004"]["connection"] == "hex" and by_id["demo-004"]["attributes"] == {"connection": "hex"}
    assert by_id["acme-empty"]["reference_images"] == 0 and by_id["acme-empty"]["body_shape"] == "tapered"
    search = (await client.get("/implants", params={"q": "DEMO-005"}, headers=auth)).json()
    assert [item["id"] for item in search["items"]] == ["demo-005"]
    page = (await client.get("/implants", params={"limit": 1, "offset": 1, "manufacturer": "synthetica"},
                             headers=auth)).json()
    assert page["total"] == 2 and len(page["items"]) == 1


async def test_implants_pages_name_the_next_offset(client, auth, catalog, session):
    """`next_offset` walks every page (the same filters and limit) and is null on the last one, as `/cases`' `next`."""
    from raiox.catalog import repository

    for n in range(3):
        await repository.upsert_system(session, f"acme-{n}", "Acme", f"Page {n}", {})
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = (await client.get("/implants", params={"limit": 2, "offset": offset}, headers=auth)).json()
        assert page["total"] == 5 and page["items"], page
        seen += [item["id"] for item in page["items"]]
        offset, pages = page["next_offset"], pages + 1
    assert pages == 3 and sorted(seen) == sorted({*seen}) and len(seen) == 5  # every system once
    whole = (await client.get("/implants", params={"limit": 5}, headers=auth)).json()
    beyond = (await client.get("/implants", params={"offset": 9}, headers=auth)).json()
    assert whole["next_offset"] is None and beyond["next_offset"] is None and beyond["items"] == []


async def test_implants_search_matches_like_wildcards_literally(client, auth, catalog, session):
    """`%` and `_` in a search are characters to find, not patterns that match every system."""
    from raiox.catalog import repository

    await repository.upsert_system(session, "acme-50", "Acme_Lab", "Cone 50% off", {})
    for q, expected in (("%", ["acme-50"]), ("_", ["acme-50"]), ("c_e", []), ("50%", ["acme-50"]), ("\\", [])):
        found = (await client.get("/implants", params={"q": q}, headers=auth)).json()["items"]
        assert [item["id"] for item in found] == expected, q
    by_maker = (await client.get("/implants", params={"manufacturer": "acme_lab"}, headers=auth)).json()
    assert by_maker["total"] == 1
    assert (await client.get("/implants", params={"manufacturer": "acme_la_"}, headers=auth)).json()["total"] == 0


async def test_implants_search_ignores_case_and_accents(client, auth, catalog, session):
    """`q` and `manufacturer` match the stored name keys (Unicode case folding, accents dropped, spaces collapsed;
    not the database's locale), as the panel's search does; `manufacturer` stays the whole maker, wildcards literal."""
    from raiox.catalog import repository

    await repository.upsert_system(session, "presny-cx", "Přesný  Dental", "Conexão Cônica", {})
    await repository.upsert_system(session, "oster-1", "ØSTER", "Hex", {})

    async def ids(**params):
        body = (await client.get("/implants", params=params, headers=auth)).json()
        return sorted(item["id"] for item in body["items"]), body["total"]

    for q in ("conexao", "CONEXÃO cônica", "conexão  CONICA", "presny", "PŘESNÝ dental", "  presny   dental "):
        assert await ids(q=q) == (["presny-cx"], 1), q
    assert await ids(q="øster") == (["oster-1"], 1)
    for q in ("c_nexao", "con%ica", "presny_dental"):
        assert await ids(q=q) == ([], 0), q
    for maker in ("presny dental", "PŘESNÝ   DENTAL", " Presny Dental "):
        assert await ids(manufacturer=maker) == (["presny-cx"], 1), maker
    assert await ids(manufacturer="øster") == (["oster-1"], 1)
    for maker in ("presny", "dental", "presny dental%", "presny_dental"):  # the whole maker, not a part or a pattern
        assert await ids(manufacturer=maker) == ([], 0), maker
    assert await ids(q="conexao", manufacturer="ØSTER") == ([], 0)


async def test_a_value_the_database_refuses_is_a_422_not_a_500(client, auth):
    """A NUL character in text (PostgreSQL refuses it) is the client's input: a typed 422, never a 500."""
    response = await client.get("/implants", params={"q": "a\x00b"}, headers=auth)
    assert response.status_code == 422
    assert response.json() == {"error": "unprocessable", "detail": response.json()["detail"]}
    assert "NUL" in response.json()["detail"]


async def test_identify_ranks_candidates_per_implant_and_stores_nothing(client, auth, catalog, reference_pngs):
    from raiox.kit.storage import content_key, get_storage
    from raiox.synth import demo_catalog, render_reference, to_png

    spec = next(s.spec for s in demo_catalog() if s.id == "demo-005")
    fresh = to_png(render_reference(spec, seed=7))  # not a stored reference
    response = await client.post("/identify", params={"top_k": 2}, headers=auth,
                                 files={"image": ("r.png", fresh, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"implants", "model_id"} and len(body["implants"]) >= 1
    implant = body["implants"][0]
    assert len(implant["box"]) == 4 and 0 < implant["confidence"] <= 1
    # no differs_from_first: the first is not compared with itself, and these systems were imported without specs
    assert [set(c) for c in implant["candidates"]] == [{"system", "manufacturer", "name", "score"}] * 2
    assert {c["system"] for c in implant["candidates"]} == {"demo-004", "demo-005"}
    assert not await get_storage().exists(content_key(fresh)[0])

    exact = await client.post("/identify", headers=auth, files={"image": ("r.png", reference_pngs["demo-004"][1])})
    assert exact.json()["implants"][0]["candidates"][0]["system"] == "demo-004"
    # its own reference (similarity 1) and the system's other one: the score is their mean
    scores = (await client.post("/identify", params={"top_k": 1}, headers=auth,
                                files={"image": ("r.png", reference_pngs["demo-004"][0])})).json()
    assert scores["implants"][0]["candidates"][0]["system"] == "demo-004"
    score = exact.json()["implants"][0]["candidates"][0]["score"]
    assert 0.5 < score < 0.999 and abs(score - scores["implants"][0]["candidates"][0]["score"]) < 2e-3


async def test_identify_store_true_keeps_the_image(client, auth, catalog):
    from raiox.kit.storage import get_storage
    from raiox.synth import demo_catalog, render_reference, to_png

    data = to_png(render_reference(demo_catalog()[10].spec, seed=3))
    response = await client.post("/identify", params={"store": "true"}, headers=auth,
                                 files={"image": ("keep.png", data, "image/png")})
    stored = response.json()["stored"]
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert await get_storage().get(stored["key"]) == data


async def test_identify_against_a_catalog_without_vectors_of_the_model_is_503_not_an_empty_answer(client, auth,
                                                                                                 reference_pngs):
    from raiox.kit.metrics import IDENTIFICATIONS

    errors = IDENTIFICATIONS.labels("error")._value.get()
    png = reference_pngs["demo-004"][0]
    answer = await client.post("/identify", headers=auth, files={"image": ("r.png", png, "image/png")})
    assert answer.status_code == 503 and answer.json()["error"] == "catalog_missing", answer.text
    assert "raiox catalog reindex" in answer.json()["detail"] and answer.headers["retry-after"]
    assert IDENTIFICATIONS.labels("error")._value.get() == errors + 1  # ours to fix, not the client's


async def test_list_paging_and_malformed_bodies_are_clear_client_errors(client, auth):
    huge = await client.get("/implants", headers=auth, params={"offset": 10**20})
    assert huge.status_code == 422 and huge.json()["error"] == "invalid_request" and "offset" in huge.json()["detail"]
    broken = await client.post("/identify", headers=auth | {"content-type": "multipart/form-data"}, content=b"x")
    assert broken.status_code == 400 and broken.json()["error"] == "bad_request", broken.text  # a stable code


async def test_identify_refuses_what_is_not_an_image(client, auth):
    html = await client.post("/identify", headers=auth,
                             files={"image": ("login.png", b"<!DOCTYPE html><html>login</html>", "image/png")})
    assert html.status_code == 422 and html.json()["detail"]
    empty = await client.post("/identify", headers=auth, files={"image": ("e.png", b"", "image/png")})
    assert empty.status_code == 400
    missing = await client.post("/identify", headers=auth)
    assert missing.status_code == 422


async def test_an_image_part_without_a_filename_is_a_clear_422_naming_the_part(client, auth, reference_pngs):
    """httpx sends a file given `filename=""` as a part without a filename (as curl's `-F image=text` does), which
    Starlette reads as text: the answer says the part carries no file, in the API's error shape, never FastAPI's
    internal "Expected UploadFile, received: <class 'str'>"."""
    png = reference_pngs["demo-004"][0]
    for sent in ({"files": {"image": ("", png, "image/png")}},
                 {"data": {"image": "not a file"}, "files": {"other": ("o.png", b"x")}}):
        response = await client.post("/identify", headers=auth, **sent)
        answer = response.json()
        assert response.status_code == 422 and answer["error"] == "invalid_request", response.text
        assert "the part named 'image' carries no file" in answer["detail"]
        assert answer["fields"] == [{"field": "image", "message": answer["detail"].removeprefix("image: ")}]
        assert "UploadFile" not in response.text and "class" not in response.text


async def test_metrics_count_requests_by_route_and_report_catalog_size(client, auth, catalog, session):
    from raiox.models import Case

    session.add(Case(jotform_submission_id="metrics-1"))
    await session.flush()
    await client.get("/implants", headers=auth)
    await client.get("/implants")
    await client.get("/cases/not-a-route-id-but-templated", headers=auth)
    await client.get("/admin/login")  # the panel's routes keep their mount path: not mixed with the API's
    for made_up in ("FOO-1", "FOO-2"):  # a client's own method names: one OTHER series, not one per name
        await client.request(made_up, "/implants")
    text = (await client.get("/metrics", headers=auth)).text
    assert "FOO-" not in text and 'raiox_http_requests_total{method="OTHER",route="/implants",status="405"} 2.0' in text
    assert 'raiox_http_requests_total{method="GET",route="/admin/login",status="200"}' in text
    assert 'raiox_http_requests_total{method="GET",route="/implants",status="200"}' in text
    assert 'raiox_http_requests_total{method="GET",route="/implants",status="401"}' in text
    assert "not-a-route-id" not in text  # route templates, never raw paths
    assert 'raiox_catalog_systems{state="active"} 2.0' in text
    assert "raiox_catalog_reference_images 4.0" in text
    assert "raiox_http_request_duration_seconds_bucket" in text and "raiox_webhooks_total" in text
    assert 'raiox_cases{status="received"} 1.0' in text and "raiox_job_queue" in text


async def test_openapi_documents_the_catalog_routes(client):
    spec = (await client.get("/openapi.json")).json()
    assert {"/implants", "/identify", "/metrics"} <= set(spec["paths"])
    identify = spec["paths"]["/identify"]["post"]
    assert "401" in identify["responses"] and "multipart/form-data" in identify["requestBody"]["content"]
    assert identify["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_identify_re_ranks_by_the_connection_and_feature_reads_when_systems_carry_specs(client, auth, catalog,
                                                                                               session):
    import numpy as np
    import pytest

    from raiox.catalog import repository
    from raiox.synth import demo_catalog, render_reference, to_png
    from raiox.vision import connection, features, read_image, threads
    from raiox.vision.attributes import HEADS

    if connection.model_path() is None:
        pytest.skip(f"{connection.MODEL_FILE} is not shipped")
    specs = {s.id: s.spec for s in demo_catalog() if s.id in ("demo-004", "demo-005")}
    png = to_png(render_reference(specs["demo-005"], seed=11))

    async def ask() -> dict:
        response = await client.post("/identify", params={"top_k": 2}, headers=auth, files={"image": ("r.png", png)})
        assert response.status_code == 200, response.text
        return response.json()["implants"][0]

    plain = await ask()  # the catalog's systems carry no spec yet: similarity only
    for sid, spec in specs.items():
        await repository.upsert_system(session, sid, "Synthetica", sid.upper(), {}, spec)
    session.expire_all()  # the first request loaded the systems (spec None) into this test's shared session
    read = await ask()
    (probs,) = connection.read(read_image(png, "r.png"), [np.asarray(read["box"], np.float32)])
    # the feature reader reads the default embedder's vectors: its probabilities come with the answer
    assert set(read["features"]) == set(features.READ)
    assert read["features"]["tapered"].keys() == {"false", "true"}
    assert sum(read["features"]["apex_shape"].values()) == pytest.approx(1, abs=1e-3)
    feats = {name: np.log([read["features"][name][str(v).lower()] for v in HEADS[name][0]]) for name in features.READ}
    ranked = [c["system"] for c in read["candidates"]]
    extra = features.bonus(feats, [specs[sid] for sid in ranked])
    # the thread count: no lengths listed in their attributes, so each spec's own length is its line
    extra += threads.bonus(threads.Turns(read["thread_turns"], 0.0), [threads.line_of(specs[sid]) for sid in ranked])
    for candidate, feature_bonus in zip(read["candidates"], extra):
        before = next(c["score"] for c in plain["candidates"] if c["system"] == candidate["system"])
        cls = connection.spec_class(specs[candidate["system"]])
        bonus = connection.WEIGHT * np.log(probs[cls] + connection.FLOOR) + feature_bonus
        assert candidate["score"] == pytest.approx(before + bonus, abs=2e-3)
    assert [c["score"] for c in read["candidates"]] == sorted((c["score"] for c in read["candidates"]), reverse=True)


async def test_every_api_error_has_the_one_shape(client, auth):
    """Validation errors, unknown routes and wrong methods answer {"error", "detail"} like the typed errors."""
    bad_id = await client.get("/cases/not-a-uuid", headers=auth)
    assert bad_id.status_code == 422 and bad_id.json()["error"] == "invalid_request"
    assert "case_id" in bad_id.json()["detail"] and bad_id.json()["fields"][0]["field"] == "case_id"
    limits = await client.get("/implants", params={"limit": 0, "offset": -1}, headers=auth)
    assert limits.status_code == 422 and {f["field"] for f in limits.json()["fields"]} == {"limit", "offset"}
    unknown = await client.get("/no-such-route", headers=auth)
    assert unknown.status_code == 404 and unknown.json() == {"error": "not_found", "detail": "Not Found"}
    wrong = await client.delete("/implants", headers=auth)
    assert (wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
            and "GET" in wrong.headers["allow"])


async def test_an_anonymous_upload_is_refused_before_its_body_is_read(client):
    """401 at once: the server does not take in a large anonymous upload only to refuse it afterwards."""
    pulled = []

    async def body():
        for _ in range(64):  # 64 MiB offered
            pulled.append(1)
            yield b"\0" * (1 << 20)

    response = await client.post("/identify", content=body(),
                                 headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert len(pulled) <= 2
    pulled.clear()  # a made-up token is refused before the body just the same
    made_up = await client.post("/identify", content=body(), headers={
        "content-type": "multipart/form-data; boundary=x", "authorization": "Bearer not-a-real-token"})
    assert made_up.status_code == 401 and made_up.json()["detail"] == "invalid or revoked token"
    assert len(pulled) <= 2


async def test_identify_takes_manual_boxes_instead_of_the_localiser(client, auth, catalog, reference_pngs):
    """A caller that knows where the implant is (a corrected crop) passes its box; bad boxes are named."""
    png = reference_pngs["demo-004"][1]
    located = (await client.post("/identify", headers=auth, files={"image": ("r.png", png)})).json()["implants"][0]
    corners = located["box"]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    for boxes in ([corners], [[min(xs), min(ys), max(xs), max(ys)]], [corners, corners]):
        response = await client.post("/identify", headers=auth, files={"image": ("r.png", png)},
                                     data={"boxes": json.dumps(boxes)})
        assert response.status_code == 200, response.text
        implants = response.json()["implants"]
        assert len(implants) == len(boxes) and all(i["confidence"] == 1.0 for i in implants)  # given, not found
        assert implants[0]["candidates"][0]["system"] == "demo-004"
    assert implants[0]["box"] == corners  # corners are kept as given
    width = Image.open(io.BytesIO(png)).width
    for bad, says in (("not json", "not JSON"), ("[]", "1 to 20 boxes"), ("[[1, 2, 3]]", "boxes[1]"),
                      ('[[10, 10, 5, 50]]', "x1 must exceed x0"), ('[[0, 0, 10, "x"]]', "finite numbers"),
                      (f"[[0, 0, {width + 50}, 40]]", f"boxes[1]: outside the {width}x"),
                      ("[[0, 0, 1, 1]]", "boxes[1]: under 8 pixels"), ("[[100, 100, 101, 600]]", "under 8 pixels"),
                      ("[[[0, 0], [0, 0], [0, 0], [0, 0]]]", "under 8 pixels"),
                      ("[[[0, 0], [100, 100], [200, 200], [300, 300]]]", "go round a quadrilateral"),  # a line
                      ("[[[0, 0], [100, 0], [0, 100], [100, 100]]]", "go round a quadrilateral"),  # edges cross
                      ("[" * 100_000 + "]" * 100_000, "not JSON")):
        refused = await client.post("/identify", headers=auth, files={"image": ("r.png", png)}, data={"boxes": bad})
        assert refused.status_code == 422 and says in refused.json()["detail"], (bad, refused.text)


async def test_identify_takes_one_image_and_counts_bad_uploads_apart_from_failures(client, auth, catalog,
                                                                                   reference_pngs):
    from raiox.kit.metrics import IDENTIFICATIONS

    def count(outcome: str) -> float:
        return IDENTIFICATIONS.labels(outcome)._value.get()

    before = count("rejected"), count("error")
    png = reference_pngs["demo-004"][0]
    two = await client.post("/identify", headers=auth, files=[("image", ("a.png", png)), ("image", ("b.png", png))])
    assert two.status_code == 400 and "one image per request" in two.json()["detail"]
    html = await client.post("/identify", headers=auth, files={"image": ("x.png", b"<html>login</html>")})
    assert html.status_code == 422
    bad_boxes = await client.post("/identify", headers=auth, files={"image": ("r.png", png)}, data={"boxes": "[]"})
    assert bad_boxes.status_code == 422
    bad_k = await client.post("/identify", headers=auth, files={"image": ("r.png", png)}, params={"top_k": 0})
    assert bad_k.status_code == 422 and bad_k.json()["error"] == "invalid_request"
    # the client's uploads, not our failures
    assert (count("rejected"), count("error")) == (before[0] + 4, before[1])


async def test_openapi_documents_the_real_error_body_and_every_authenticated_route(client):
    spec = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "detail", "fields"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    body = "/Readiness" if (path, code) == ("/readyz", "503") else "/ErrorBody"  # its checks
                    assert response["content"]["application/json"]["schema"]["$ref"].endswith(body), (path, code)
            if path.startswith(("/cases", "/implants", "/identify", "/metrics")):
                assert op.get("security") == [{"HTTPBearer": []}], (method, path)
                assert {"401", "403"} <= set(op["responses"]), (method, path)  # no token; a token of another scope
    webhook = spec["paths"]["/webhooks/jotform"]["post"]["responses"]
    assert {"200", "400", "401", "413", "415", "422", "503"} <= set(webhook)  # every answer the webhook gives
