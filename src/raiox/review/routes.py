"""Review API: approve or reject a case (bearer token or panel session + CSRF header)."""

import uuid

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import get_db_session
from raiox.kit.errors import Forbidden
from raiox.review import service
from raiox.review.auth import require_actor
from raiox.review.schemas import ApproveRequest, DecisionResponse, MarkDeliveredRequest, RejectRequest

router = APIRouter(tags=["review"])
ERRORS = {401: {"description": "No valid token or session"}, 403: {"description": "Not allowed to this actor"},
          404: {"description": "Unknown case"},
          409: {"description": "The case is not awaiting review"}}


@router.post("/cases/{case_id}/approve", response_model=DecisionResponse, responses=ERRORS)
async def approve_case(case_id: uuid.UUID, body: ApproveRequest, actor: str = Depends(require_actor),
                       session: AsyncSession = Depends(get_db_session)) -> dict:
    """Approve with the chosen implant system (and any others the films show); enqueues the delivery.
    Repeating it is harmless. `add_to_catalog` needs an API token or an admin's panel session."""
    if body.add_to_catalog and not await service.may_edit_catalog(session, actor):
        raise Forbidden("only admins (or API tokens) add case images to the catalog")
    return await service.approve(session, case_id, body.system_id, actor=actor, message=body.message,
                                 add_to_catalog=body.add_to_catalog, other_system_ids=body.other_system_ids)


@router.post("/cases/{case_id}/reject", response_model=DecisionResponse, responses=ERRORS)
async def reject_case(case_id: uuid.UUID, body: RejectRequest, actor: str = Depends(require_actor),
                      session: AsyncSession = Depends(get_db_session)) -> dict:
    """Reject with a message to the dentist (e.g. ask for a sharper radiograph); enqueues the delivery."""
    return await service.reject(session, case_id, body.message, actor=actor)


@router.post("/cases/{case_id}/mark-delivered", status_code=204, responses=ERRORS | {
    409: {"description": "The case's delivery has not failed"}})
async def mark_delivered(case_id: uuid.UUID, body: MarkDeliveredRequest, actor: str = Depends(require_actor),
                         session: AsyncSession = Depends(get_db_session)) -> None:
    """A failed delivery whose result reached the dentist another way (say how): the case becomes delivered."""
    await service.mark_delivered(session, case_id, body.message, actor=actor)
