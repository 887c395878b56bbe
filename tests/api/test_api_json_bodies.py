"""A JSON body the API cannot read (malformed, not sent as JSON, not an object, absent): 422 in the API's error shape,
with words that say what is wrong with the body, never a character offset posing as a field name."""

import pytest
from api_helpers import add_case_and_system


@pytest.mark.parametrize(("headers", "body", "says"), [
    ({"Content-Type": "application/json"}, b'{"message": "sharper film",', "malformed JSON at offset 27"),
    ({"Content-Type": "application/json"}, b"{'message': 'x'}", "malformed JSON at offset 1: Expecting property"),
    ({"Content-Type": "text/plain"}, b'{"message": "x"}', "Content-Type: application/json (got text/plain)"),
    ({}, b'{"message": "x"}', "Content-Type: application/json (got no Content-Type)"),
    ({"Content-Type": "application/json"}, b'["x"]', "the body must be a JSON object"),
    ({"Content-Type": "application/json"}, b"", "a JSON object body is required"),
])
async def test_an_unreadable_body_is_named_as_the_body(client, session, auth, headers, body, says):
    from raiox.models import Case

    case_id = await add_case_and_system(session)
    answer = await client.post(f"/cases/{case_id}/reject", content=body, headers=auth | headers)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", answer.text
    assert answer.json()["fields"] == [{"field": "body", "message": answer.json()["fields"][0]["message"]}]
    assert says in answer.json()["detail"] and answer.json()["detail"].startswith("body: "), answer.json()
    assert (await session.get(Case, case_id)).status == "awaiting_review"  # nothing decided


async def test_a_fields_problem_still_names_the_field(client, session, auth):
    case_id = await add_case_and_system(session)
    answer = await client.post(f"/cases/{case_id}/approve", json={"system_id": "scope-sys", "message": 5},
                               headers=auth)
    assert answer.status_code == 422
    assert [f["field"] for f in answer.json()["fields"]] == ["message"]
