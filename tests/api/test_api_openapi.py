"""The OpenAPI documents of the API host and the admin host, as a client generator reads them: valid, one error body,
every answer the app can give declared with the headers it carries, the status values listed."""

import httpx
import pytest

from raiox.models import CaseStatus


@pytest.fixture
async def admin_spec(database_url) -> dict:
    from raiox.review.panel import create_admin_app

    transport = httpx.ASGITransport(app=create_admin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        return (await http.get("/openapi.json")).json()


@pytest.fixture
async def spec(client) -> dict:
    return (await client.get("/openapi.json")).json()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


async def test_both_documents_are_valid_openapi(spec, admin_spec):
    validator = pytest.importorskip("openapi_spec_validator")
    for document in (spec, admin_spec):
        validator.validate(document)


@pytest.mark.parametrize("host", ["api", "admin"])
async def test_every_answer_declares_its_headers_and_every_database_route_its_outage(spec, admin_spec, host):
    document = spec if host == "api" else admin_spec
    headers = document["components"]["headers"]
    assert {"X-Request-ID", "Retry-After", "WWW-Authenticate"} <= set(headers)
    assert "HTTPValidationError" not in document["components"]["schemas"]  # the admin host's too: one error body
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        if path != "/healthz":  # every other route reads the database: its outage is a 503 with Retry-After
            assert "503" in responses, (method, path)
        for code, response in responses.items():
            named = set(response.get("headers", {}))
            assert "X-Request-ID" in named, (method, path, code)
            if code in ("429", "503"):
                assert "Retry-After" in named, (method, path, code)
            if code == "401":
                assert "WWW-Authenticate" in named, (method, path, code)
            if code[0] in "45" and (path, code) != ("/readyz", "503"):
                assert response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"


async def test_status_values_are_listed(spec):
    schemas, every = spec["components"]["schemas"], [str(s) for s in CaseStatus]
    for model in ("CaseSummary", "CaseDetail", "DecisionResponse", "RetryAccepted"):
        assert schemas[model]["properties"]["status"]["enum"] == every, model
    assert schemas["DecisionResponse"]["properties"]["decision"]["enum"] == ["approved", "rejected"]
    assert "processed" in schemas["ImageOut"]["properties"]["status"]["enum"]
    status = next(p for p in spec["paths"]["/cases"]["get"]["parameters"] if p["name"] == "status")
    assert status["schema"]["enum"] == every


async def test_decisions_document_that_the_same_one_again_is_answered_200(spec):
    for verb in ("approve", "reject"):
        responses = spec["paths"][f"/cases/{{case_id}}/{verb}"]["post"]["responses"]
        assert "same decision sent again" in responses["409"]["description"], verb
        assert "same" in responses["200"]["description"], verb


async def test_a_real_401_carries_the_headers_the_document_names(client):
    """The document names what the app sends (a 503's Retry-After: tests/intake/test_database_outage.py)."""
    for answer in (await client.get("/cases"), await client.post("/webhooks/jotform?token=wrong")):
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", answer.request.url
        assert answer.headers["x-request-id"]


@pytest.mark.parametrize("host", ["api", "admin"])
async def test_an_error_names_each_fields_problem_as_a_model(spec, admin_spec, host):
    """`fields` is a list of `FieldProblem` (field, message), both required, in components (no `$defs` left inside
    ErrorBody, which a `#/$defs/...` reference would resolve against the document's root)."""
    schemas = (spec if host == "api" else admin_spec)["components"]["schemas"]
    fields = schemas["ErrorBody"]["properties"]["fields"]
    assert fields["anyOf"][0] == {"type": "array", "items": {"$ref": "#/components/schemas/FieldProblem"}}
    assert "$defs" not in schemas["ErrorBody"]
    problem = schemas["FieldProblem"]
    assert set(problem["properties"]) == set(problem["required"]) == {"field", "message"}


async def test_a_real_invalid_request_matches_the_documented_field_problem(client, auth):
    """The wire JSON is what the model says: each entry exactly `field` and `message`, strings."""
    import uuid

    from raiox.app import ErrorBody

    answer = await client.post(f"/cases/{uuid.uuid4()}/reject", json={"message": ""}, headers=auth)
    body = answer.json()
    assert answer.status_code == 422 and ErrorBody.model_validate(body).model_dump(exclude_none=True) == body
    assert body["fields"] == [{"field": "message", "message": body["fields"][0]["message"]}]


@pytest.mark.parametrize(("path", "method"), [("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"),
                                              ("/implants", "get"), ("/identify", "post")])
async def test_the_probes_metrics_and_catalog_routes_say_what_they_do(spec, path, method):
    operation = spec["paths"][path][method]
    assert len(operation.get("description", "")) > 40 and operation["summary"] != "Healthz", operation


async def test_every_request_body_has_examples_the_api_takes(spec):
    """Each JSON body's schema carries examples (the whole body, or each field) that its model accepts, and
    /identify's `boxes` examples are boxes it reads."""
    from raiox.catalog.identify import parse_boxes
    from raiox.review import schemas as review

    schemas, seen = spec["components"]["schemas"], set()
    for path, method, operation in _operations(spec):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            name = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            schema, seen = schemas[name], seen | {name}
            examples = schema.get("examples") or [{field: prop["examples"][0] for field, prop in
                                                   schema["properties"].items() if "examples" in prop}]
            assert examples and all(examples), (method, path, name)
            for example in examples:
                getattr(review, name).model_validate(example)
    assert {"ApproveRequest", "RejectRequest"} <= seen
    identify = spec["paths"]["/identify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    boxes = schemas[identify["$ref"].rsplit("/", 1)[-1]]["properties"]["boxes"]["examples"]
    assert len(boxes) == 2 and all(parse_boxes(example) for example in boxes)
