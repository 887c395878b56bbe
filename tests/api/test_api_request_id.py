"""X-Request-ID: each request's id (the client's when sane, else a new one) answers in the header and is on every log
line the request writes."""

import json
import re

import httpx
import pytest

from raiox.kit.logging import configure_logging, get_logger

NEW_ID = re.compile(r"[0-9a-f]{32}")


async def test_a_sane_client_id_is_echoed_back(client):
    for given in ("abc-123.X_y", "f" * 128):
        response = await client.get("/healthz", headers={"X-Request-ID": given})
        assert response.status_code == 200 and response.headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["", "has space", "a/b", "x" * 129, "naïve", "id\ttab"])
async def test_an_unfit_client_id_is_replaced_by_a_fresh_one(client, given):
    response = await client.get("/healthz", headers={"X-Request-ID": given.encode()})
    answered = response.headers.get_list("x-request-id")
    assert len(answered) == 1 and NEW_ID.fullmatch(answered[0]) and answered[0] != given


async def test_without_an_id_each_request_gets_its_own(client):
    first, second = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(2)]
    assert NEW_ID.fullmatch(first) and NEW_ID.fullmatch(second) and first != second


async def test_the_requests_log_lines_carry_its_id_and_later_ones_do_not(client, auth, capsys):
    configure_logging("json")
    try:
        # a NUL in the search text: the database refuses it and the app logs request.unstorable_value
        response = await client.get("/implants", params={"q": "a\x00b"}, headers=auth | {"X-Request-ID": "req-42"})
        get_logger("raiox.test").info("after_the_request")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        configure_logging("console")
    assert response.status_code == 422 and response.headers["x-request-id"] == "req-42"
    logged = {line["event"]: line for line in lines}
    assert logged["request.unstorable_value"]["request_id"] == "req-42"
    assert "request_id" not in logged["after_the_request"]  # unbound once the request is answered


async def test_an_unexpected_failure_answers_with_the_id_too(database_url):
    from raiox.app import create_app

    app = create_app()

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert response.headers["x-request-id"] == "crash-1"


async def test_the_admin_host_answers_with_the_id(database_url):
    from raiox.review.panel import create_admin_app

    transport = httpx.ASGITransport(app=create_admin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        given = await http.get("/healthz", headers={"X-Request-ID": "admin-7"})
        fresh = await http.get("/admin/login")
    assert given.headers["x-request-id"] == "admin-7" and NEW_ID.fullmatch(fresh.headers["x-request-id"])
