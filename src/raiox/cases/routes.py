"""Cases API (bearer token): list, detail (images, implants, fused ranking, history), retry."""

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import views
from raiox.cases.schemas import CaseDetail, CasePage, RetryAccepted
from raiox.cases.service import get_or_404
from raiox.intake.service import retry_case
from raiox.kit.auth import require_token
from raiox.kit.bodylimit import JSON_MAX_BODY
from raiox.kit.deps import DbSession
from raiox.models import CaseStatus

router = APIRouter(prefix="/cases", tags=["cases"], max_body_size=JSON_MAX_BODY)
UNAUTHORIZED = {401: {"description": "No valid bearer token"},
                403: {"description": "The token lacks the `cases` scope"}}
UNKNOWN = {404: {"description": "Unknown case"}}


@router.get("", response_model=CasePage, responses=UNAUTHORIZED | {
    400: {"description": "Malformed cursor, or an unknown status"}})
async def list_cases(
    status: str | None = Query(None, description="Only cases in this status", json_schema_extra={
        "enum": list(CaseStatus)}),
    submission_id: str | None = Query(None, description="Jotform submission id"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, description="the `next` of the previous page"),
    _actor: str = Depends(require_token("cases")),
    session: AsyncSession = DbSession,
) -> CasePage:
    """Cases, newest first, a page at a time (keyset pagination: follow `next`)."""
    return await views.case_page(session, status=status, submission_id=submission_id, limit=limit, cursor=cursor)


@router.get("/{case_id}", response_model=CaseDetail, responses=UNAUTHORIZED | UNKNOWN)
async def get_case(case_id: uuid.UUID, _actor: str = Depends(require_token("cases")),
                   session: AsyncSession = DbSession) -> CaseDetail:
    """One case: its images with the implants found and their candidates, the fused ranking, the history."""
    return await views.case_detail(session, case_id)


@router.post("/{case_id}/retry", response_model=RetryAccepted, responses=UNAUTHORIZED | UNKNOWN | {
    409: {"description": "Nothing to retry: the case has not failed, nor has it films that could not be downloaded or "
                   "were not analysed"}})
async def retry(case_id: uuid.UUID, actor: str = Depends(require_token("cases")),
                session: AsyncSession = DbSession) -> RetryAccepted:
    """Re-enqueue a failed case (status `received`: processed again). A case awaiting review with films whose
    download failed gets only those films fetched again (job `refetch_images`; status stays `awaiting_review`, the
    reviewer's work as it is). 409 otherwise."""
    case = await get_or_404(session, case_id, for_update=True)
    job_id = await retry_case(session, case, actor=actor)
    return RetryAccepted(case_id=case.id, status=case.status, job_id=job_id)
