"""HEAD on the API's GET routes (RFC 9110): the GET's status and headers without the body, the token checked the
same way; methods a route does not have still answer 405."""

import uuid

import httpx
import pytest
from api_helpers import add_case_and_system


async def test_head_answers_like_get_without_the_body(client, session, auth):
    case_id = await add_case_and_system(session)
    for path in ("/cases", f"/cases/{case_id}", "/implants", "/healthz"):
        got, head = await client.get(path, headers=auth), await client.head(path, headers=auth)
        assert got.status_code == head.status_code == 200, (path, head.status_code, head.text)
        assert head.content == b"", path
        for name in ("content-type", "content-length", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        assert head.headers["x-request-id"]


async def test_head_refuses_as_get_does(client, session, auth):
    from raiox.kit.tokens import create_token

    other = {"Authorization": f"Bearer {await create_token(session, 'only-identify', ['identify'])}"}
    anonymous = await client.head("/cases")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.content == b""
    assert (await client.head("/cases", headers=other)).status_code == 403
    assert (await client.head(f"/cases/{uuid.uuid4()}", headers=auth)).status_code == 404


@pytest.mark.parametrize("path", ["/cases/{id}/approve", "/identify", "/webhooks/jotform"])
async def test_head_on_a_route_without_get_is_still_405(client, session, auth, path):
    case_id = await add_case_and_system(session)
    answer = await client.head(path.format(id=case_id), headers=auth)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"


async def test_the_admin_hosts_probes_answer_head(database_url):
    from raiox.review.panel import create_admin_app

    transport = httpx.ASGITransport(app=create_admin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        head = await http.head("/healthz")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"


async def test_the_admin_hosts_api_answers_are_not_cached(session, auth):
    """The review API on the admin host (`raiox admin`) answers with the case and its reviewer: `no-store`, as on the
    API hosts."""
    from fakes.db import session_client
    from raiox.review.panel import create_admin_app

    case_id = await add_case_and_system(session)
    async with session_client(create_admin_app(), session, "http://admin") as http:
        decided = await http.post(f"/cases/{case_id}/reject", json={"message": "Envie uma radiografia nítida"},
                                  headers=auth)
    assert decided.status_code == 200 and decided.json()["reviewed_by"] == "token:api-test"
    assert decided.headers["cache-control"] == "no-store"
