"""Test data for the API tests: a case awaiting review and its system."""

import uuid


async def add_case_and_system(session) -> uuid.UUID:
    from raiox.models import Case, ImplantSystem

    session.add(ImplantSystem(id="scope-sys", manufacturer="Acme", name="Scope"))
    case = Case(jotform_submission_id=str(uuid.uuid4().int)[:19], status="awaiting_review", client_name="Dra. Ana")
    session.add(case)
    await session.flush()
    return case.id
