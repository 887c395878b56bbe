from raiox.cases.service import transition
from raiox.kit.tokens import create_token, hash_token, token_actor
from raiox.kit.errors import Conflict
from raiox.models import Case, CaseStatus


async def test_token_round_trip_is_hashed(session):
    token = await create_token(session, "ci")
    assert token.startswith("rx_") and len(token) > 40
    assert await token_actor(session, token) == "token:ci"
    assert await token_actor(session, token + "x") is None
    assert hash_token(token) != token


async def test_transitions_are_recorded_and_guarded(session):
    from raiox.cases.repository import list_events

    case = Case(jotform_submission_id="t-1")
    session.add(case)
    await session.flush()
    await transition(session, case, CaseStatus.processing, actor="system:test")
    await transition(session, case, CaseStatus.failed, actor="system:test", reason="boom")
    assert case.failure_reason == "boom"
    try:
        await transition(session, case, CaseStatus.approved, actor="user:x")
        raise AssertionError("expected Conflict")
    except Conflict as exc:
        assert exc.status_code == 409
    events = await list_events(session, case.id)
    assert [(e.from_status, e.to_status) for e in events] == [("received", "processing"), ("processing", "failed")]
