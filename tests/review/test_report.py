import uuid

from review_helpers import add_case, add_system

from raiox.delivery.report import case_from_token, report_token, report_url
from raiox.kit.errors import NotFound
from raiox.review import service as review


async def test_signed_report_link_shows_the_result(client, session):
    await add_system(session, "str-bl", "Straumann", "Bone Level", seed=2)
    case = await add_case(session, candidates=[("str-bl", 0.8)])
    await review.approve(session, case.id, "str-bl", actor="user:rev@example.com")
    url = report_url(case.id)
    assert url.startswith("http") and "/reports/" in url
    response = await client.get(f"/reports/{report_token(case.id)}")
    assert response.status_code == 200
    assert "Bone Level" in response.text and "Straumann" in response.text and "rev@example.com" in response.text
    assert response.text.count("data:image/jpeg;base64,") == 2  # the X-ray and the system's reference
    tampered = report_token(case.id)[:-2] + "xx"
    assert (await client.get(f"/reports/{tampered}")).status_code == 404


async def test_expired_report_link(monkeypatch, session):
    import itsdangerous

    token = report_token(uuid.uuid4())
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: 2_000_000_000_0)
    try:
        case_from_token(token)
        raise AssertionError("expected NotFound")
    except NotFound as exc:
        assert "expired" in exc.message
