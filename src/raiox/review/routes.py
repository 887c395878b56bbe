"""Review API: approve or reject a case (bearer token or panel session + CSRF header)."""

import uuid

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import views
from raiox.kit.bodylimit import JSON_MAX_BODY
from raiox.kit.deps import DbSession
from raiox.kit.errors import Forbidden
from raiox.review import marks, reread, service
from raiox.review.auth import require_actor
from raiox.cases.schemas import ImplantOut
from raiox.review.schemas import (
    ApproveRequest, ContactRequest, DecisionResponse, MarkDeliveredRequest, MarkRequest, RejectRequest,
    RereadResponse,
)

router = APIRouter(tags=["review"], max_body_size=JSON_MAX_BODY)  # a bigger JSON body is refused unread
ERRORS = {401: {"description": "No valid token or session"}, 403: {"description": "Not allowed to this actor"},
          404: {"description": "Unknown case"},
          409: {"description": "The case is not awaiting review"}}


REPEATED = ("; the same decision sent again (same system, other systems, implants and message) is answered 200 with "
            "the decision as recorded, nothing changed")


@router.post("/cases/{case_id}/approve", response_model=DecisionResponse, responses=ERRORS | {
    200: {"description": "Approved (or the same approval again: the decision as recorded)"},
    409: {"description": "The case is not awaiting review, nor approved with this same decision" + REPEATED}})
async def approve_case(request: Request, case_id: uuid.UUID, body: ApproveRequest,
                       actor: str = Depends(require_actor), session: AsyncSession = DbSession) -> dict:
    """Approve with the chosen implant system (and any others the films show); enqueues the delivery.
    Repeating it is harmless. `add_to_catalog` needs an API token with the `catalog` scope or an admin's panel
    session."""
    if body.add_to_catalog and not await service.may_edit_catalog(
            session, actor, getattr(request.state, "token_scopes", None)):
        raise Forbidden("only admins (or API tokens with the 'catalog' scope) add case images to the catalog")
    return await service.approve(session, case_id, body.system_id, actor=actor, message=body.message,
                                 add_to_catalog=body.add_to_catalog, other_system_ids=body.other_system_ids,
                                 implants=body.implants)


@router.post("/cases/{case_id}/reject", response_model=DecisionResponse, responses=ERRORS | {
    200: {"description": "Rejected (or the same rejection again: the decision as recorded)"},
    409: {"description": "The case is neither awaiting review nor failed, nor rejected with this same message"
                         + REPEATED}})
async def reject_case(case_id: uuid.UUID, body: RejectRequest, actor: str = Depends(require_actor),
                      session: AsyncSession = DbSession) -> dict:
    """Reject with a message to the dentist (e.g. ask for a sharper radiograph); enqueues the delivery. A `failed`
    case (no film could be downloaded or read) can be rejected too, so that its dentist learns why. Repeating it
    (the same message) is harmless."""
    return await service.reject(session, case_id, body.message, actor=actor)


@router.post("/cases/{case_id}/mark-delivered", status_code=204, response_class=Response, responses=ERRORS | {
    409: {"description": "The case's delivery has not failed"}})
async def mark_delivered(case_id: uuid.UUID, body: MarkDeliveredRequest, actor: str = Depends(require_actor),
                         session: AsyncSession = DbSession) -> None:
    """A failed delivery whose result reached the dentist another way (say how): the case becomes delivered."""
    await service.mark_delivered(session, case_id, body.message, actor=actor)


@router.post("/cases/{case_id}/images/{image_id}/fixtures", status_code=201, response_model=ImplantOut,
             responses=ERRORS | {404: {"description": "Unknown case, or image not of this case"},
                                 409: {"description": "The case is not awaiting review, or the image was not analysed"},
                                 422: {"description": "Malformed box, outside the image, or too small"}})
async def mark_implant(case_id: uuid.UUID, image_id: uuid.UUID, body: MarkRequest, actor: str = Depends(require_actor),
                       session: AsyncSession = DbSession) -> ImplantOut:
    """Mark an implant on a film (one the analysis missed, or boxed badly): the box is canonicalised, embedded and
    searched like a located implant, stored as a manual implant (kept when the implants are read again), and the
    case's ranking is fused again. The same box sent twice is stored once."""
    image = await marks.markable_image(session, case_id, image_id)
    box = marks.check_mark(body.box, image)
    await session.commit()  # no transaction (nor pool connection) is held through the analysis
    model_id, located = await marks.read_mark(image, box)
    fixture_id = await marks.add_fixture(session, case_id, image_id, located, model_id, actor=actor)
    return await views.implant(session, case_id, fixture_id)


@router.post("/cases/{case_id}/reread", response_model=RereadResponse, responses=ERRORS | {
    409: {"description": "The case is not awaiting review, shows no implant, or the catalog has no vectors of the "
                         "current model (run `raiox catalog reindex` first); nothing was changed"}})
async def reread_case(case_id: uuid.UUID, actor: str = Depends(require_actor),
                      session: AsyncSession = DbSession) -> RereadResponse:
    """Read every implant of the case again with the current models (after `RAIOX_EMBEDDER` or a reader changed
    while the case awaited review): each keeps its box and number, is embedded, read and searched again, and the
    case's ranking is fused again. Nothing is located anew: removed implants stay removed, marked ones stay.
    `GET /cases/{id}` shows each implant's new candidates."""
    found = await reread.films(session, case_id)
    await session.commit()  # no transaction (nor pool connection) is held through the analysis
    readings = await reread.read(found)
    count = await reread.store(session, case_id, readings, actor=actor)
    return RereadResponse(case_id=case_id, model_id=readings[0].model_id, implants=count,
                          ranking=await views.ranking(session, case_id))


@router.delete("/cases/{case_id}/fixtures/{fixture_id}", status_code=204, response_class=Response, responses=ERRORS | {
    404: {"description": "Unknown case, or implant not of this case"}})
async def remove_implant(case_id: uuid.UUID, fixture_id: uuid.UUID, actor: str = Depends(require_actor),
                         session: AsyncSession = DbSession) -> None:
    """Remove an implant (located or marked) that is not one (a crown, a filling, a second box on the same
    implant) from the case's evidence; the ranking is fused again. Reading the implants again (`/reread`) leaves it
    removed."""
    await marks.remove_fixture(session, case_id, fixture_id, actor=actor)


@router.post("/cases/{case_id}/revoke-report", status_code=204, response_class=Response, responses=ERRORS | {
    409: {"description": "The case has no report (not approved), or a delivery is in progress"}})
async def revoke_report(case_id: uuid.UUID, actor: str = Depends(require_actor),
                        session: AsyncSession = DbSession) -> None:
    """Every report link of the case stops working (the dentist's page says it was deactivated). Nothing is sent;
    `POST /cases/{id}/redeliver` sends a new link."""
    await service.revoke_report(session, case_id, actor=actor)


@router.post("/cases/{case_id}/redeliver", status_code=204, response_class=Response, responses=ERRORS | {
    409: {"description": "The case's result was not delivered, or a delivery is in progress"},
    429: {"description": "Sent again less than 10 minutes ago, or 3 times in 24 hours; `Retry-After` says in how many "
                         "seconds it may be sent again",
          "headers": {"Retry-After": {"description": "Seconds until the case may be sent again",
                                      "schema": {"type": "integer", "minimum": 1}}}}})
async def redeliver(case_id: uuid.UUID, actor: str = Depends(require_actor),
                    session: AsyncSession = DbSession) -> None:
    """Send a delivered result again (Jotform edited again, a new e-mail) with a new report link; the old links stop
    working."""
    await service.redeliver(session, case_id, actor=actor)


@router.post("/cases/{case_id}/contact", status_code=204, response_class=Response, responses=ERRORS | {
    409: {"description": "The case's data were removed"}, 422: {"description": "Not an e-mail address"}})
async def set_contact(case_id: uuid.UUID, body: ContactRequest, actor: str = Depends(require_actor),
                      session: AsyncSession = DbSession) -> None:
    """Correct the dentist's e-mail (a typo in the form); then `redeliver` (or a pending delivery) uses it."""
    await service.set_client_email(session, case_id, body.email, actor=actor)
