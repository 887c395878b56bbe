"""kit.jotform against the fake API: envelope checks, typed errors, retries, base URL forms."""

import pytest

from fakes.jotform import FORM_ID
from raiox.kit.jotform import (JotformAuthError, JotformClient, JotformError, JotformNotFound, JotformUnavailable,
                               get_jotform_client)


async def test_get_submission_with_and_without_v1_prefix(jotform):
    content = jotform.add_submission(FORM_ID)
    for base in (jotform.url, jotform.url + "/v1", jotform.url + "/v1/"):
        async with JotformClient("test-jotform-key", base, retries=0) as api:
            got = await api.get_submission(content["id"])
        assert got["id"] == content["id"] and got["form_id"] == FORM_ID
    assert all(r.headers.get("APIKEY") == "test-jotform-key" and "apiKey" not in r.query for r in jotform.requests)


async def test_typed_errors(jotform):
    async with JotformClient("wrong", jotform.url, retries=0) as api:
        with pytest.raises(JotformAuthError, match="401"):
            await api.get_submission("1")
    async with get_jotform_client() as api:
        with pytest.raises(JotformNotFound):
            await api.request("GET", "no/such/endpoint")
        jotform.fail("/submission/", 200, body=b'{"responseCode": 400, "message": "Bad request", "content": []}')
        with pytest.raises(JotformError, match="Bad request") as info:
            await api.get_submission("1")
        assert not info.value.retryable  # HTTP 200 but the body says 400


async def test_retries_on_503_429_and_html_then_succeeds(jotform):
    content = jotform.add_submission(FORM_ID)
    jotform.fail("/submission/", 503, times=1)
    jotform.fail("/submission/", 429, times=1)
    async with get_jotform_client(retries=3) as api:
        assert (await api.get_submission(content["id"]))["id"] == content["id"]
    jotform.fail("/submission/", 502, times=5, body=b"<html>Bad gateway</html>")
    async with get_jotform_client(retries=2) as api:
        with pytest.raises(JotformUnavailable, match="502"):
            await api.get_submission(content["id"])


async def test_list_submissions_filters_on_created_at(jotform):
    from fakes.jotform import created_at_ago

    old = jotform.add_submission(FORM_ID, created_at=created_at_ago(days=5))
    new = jotform.add_submission(FORM_ID, created_at=created_at_ago(hours=1))
    async with get_jotform_client() as api:
        page = await api.list_submissions(FORM_ID, created_after=created_at_ago(days=2), limit=50)
    assert [s["id"] for s in page] == [new["id"]] and old["id"] != new["id"]
    assert '"created_at:gt"' in jotform.requests[-1].query["filter"][0]


async def test_timeouts_are_retried_then_unavailable(jotform):
    jotform.delay("/submission/", 1.0)
    async with JotformClient("test-jotform-key", jotform.url, timeout=0.2, retries=1, backoff=0.01) as api:
        with pytest.raises(JotformUnavailable, match="unreachable"):
            await api.get_submission("1")
