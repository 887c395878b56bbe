"""A JSON body over JSON_MAX_BODY (approve, reject and every other route the document says takes JSON) is refused
413 `too_large` in the API's error shape before it is read or parsed, declared or streamed without a length; the
webhook (form posts, intake.formdata's own 16 MiB) and /identify (its own limit) keep theirs."""

import re
import uuid

import httpx
import pytest
from api_helpers import add_case_and_system

from raiox.kit.bodylimit import JSON_MAX_BODY

CHUNK = 64 * 1024


async def _json_operations(client) -> list[str]:
    spec = (await client.get("/openapi.json")).json()
    paths = [path for path, operations in spec["paths"].items() for operation in operations.values()
             if "application/json" in operation.get("requestBody", {}).get("content", {})]
    assert {"/cases/{case_id}/approve", "/cases/{case_id}/reject"} <= set(paths)
    return [re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path) for path in paths]


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 413, (answer.request.url, answer.status_code, answer.text)
    assert answer.json() == {"error": "too_large", "detail": f"request body over {JSON_MAX_BODY} bytes"}


def _stream(pulled: list[int], size: int = 4 * JSON_MAX_BODY):
    async def chunks():  # a JSON object that never ends, pulled chunk by chunk (no Content-Length)
        yield b'{"message": "'
        for _ in range(size // CHUNK):
            pulled.append(CHUNK)
            yield b"x" * CHUNK
    return chunks()


async def test_every_json_route_refuses_an_oversized_body_before_the_token(client):
    """No token: the refusal comes before its check (a 401 would mean the body was read first, or not limited)."""
    headers = {"Content-Type": "application/json"}
    for url in await _json_operations(client):
        _refused(await client.post(url, content=b"{}", headers=headers | {"Content-Length": str(JSON_MAX_BODY + 1)}))
        pulled: list[int] = []
        _refused(await client.post(url, content=_stream(pulled), headers=headers))
        assert sum(pulled) <= JSON_MAX_BODY + 2 * CHUNK, url  # cut at the limit, the rest never asked for


async def test_a_body_within_the_limit_is_read_as_before(client, session, auth):
    from raiox.models import Case

    case_id = await add_case_and_system(session)
    body = b'{"message": "Envie uma radiografia mais n\\u00edtida."}'
    body += b" " * (JSON_MAX_BODY - len(body))  # exactly the limit: JSON whitespace
    answer = await client.post(f"/cases/{case_id}/reject", content=body,
                               headers=auth | {"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert (await session.get(Case, case_id)).status == "rejected"


async def test_the_admin_host_refuses_it_too(database_url):
    from raiox.review.panel import create_admin_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_admin_app()),
                                 base_url="http://admin") as http:
        url = f"/cases/{uuid.uuid4()}/approve"
        headers = {"Content-Type": "application/json"}
        _refused(await http.post(url, content=b"{}", headers=headers | {"Content-Length": str(JSON_MAX_BODY + 1)}))
        pulled: list[int] = []
        _refused(await http.post(url, content=_stream(pulled), headers=headers))
        assert sum(pulled) <= JSON_MAX_BODY + 2 * CHUNK


async def test_the_webhook_and_identify_keep_their_own_limits(client, auth):
    """A form post of 2 MiB reaches the webhook's own reading (not a Jotform submission: 400), an upload of 2 MiB
    reaches /identify's (not an image: 422); neither is cut at JSON_MAX_BODY."""
    pad = "x" * (2 * JSON_MAX_BODY)
    webhook = await client.post("/webhooks/jotform?token=test-webhook-secret", data={"pad": pad})
    assert webhook.status_code == 400 and "submissionID" in webhook.json()["detail"], webhook.text
    upload = await client.post("/identify", headers=auth, files={"image": ("a.png", pad.encode(), "image/png")})
    assert upload.status_code == 422, upload.text


@pytest.mark.parametrize("path", ["/cases/{case_id}/approve", "/cases/{case_id}/reject"])
async def test_the_document_names_the_413(client, path):
    spec = (await client.get("/openapi.json")).json()
    refused = spec["paths"][path]["post"]["responses"]["413"]
    assert refused["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"
    assert str(JSON_MAX_BODY) in refused["description"]
    for own in ("/webhooks/jotform", "/identify"):  # their own 413s, their own words
        assert str(JSON_MAX_BODY) not in spec["paths"][own]["post"]["responses"]["413"]["description"]
