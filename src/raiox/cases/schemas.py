"""Cases API shapes. `implants` uses the per-implant structure of `raiox identify --json`."""

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from raiox.models import CaseStatus, ImageStatus


def case_status():
    """A case's status field: its values documented (`enum` in the OpenAPI document) without making an answer fail
    on a status added later."""
    return Field(json_schema_extra={"enum": list(CaseStatus)}, description=", ".join(CaseStatus))


class CaseSummary(BaseModel):
    id: uuid.UUID
    jotform_submission_id: str
    status: str = case_status()
    status_label: str  # pt-BR, for display
    client_name: str | None
    client_email: str | None
    source: str
    failure_reason: str | None
    approved_system_id: str | None
    other_system_ids: list[str] = []  # other systems the approval names, after the main one
    purged_at: datetime | None = None  # films and personal data removed (data retention): those fields are null
    submitted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CasePage(BaseModel):
    items: list[CaseSummary]
    next: str | None  # cursor for the next page (GET /cases?cursor=...), None on the last page


class CandidateOut(BaseModel):
    system: str
    manufacturer: str
    name: str
    score: float
    rank: int
    reference_image_id: uuid.UUID | None = None


class ImplantOut(BaseModel):
    box: list[list[float]]  # [[x, y] * 4], platform edge first
    confidence: float
    candidates: list[CandidateOut]
    id: uuid.UUID
    index: int  # stable within the film (gaps after a removal)
    number: int  # the implant's number on its film as the panel, the e-mail and the report show it (left to right)
    manual: bool
    model_id: str
    connection: dict[str, float] | None = None  # the connection reader's probability per class (null: not read)
    features: dict[str, dict[str, float]] | None = None  # the feature reader's, per feature and value (null: not read)
    thread_turns: float | None = None  # length over thread pitch counted on the film (null: box too short to count)
    approved_system_id: str | None = None  # the approved system the reviewer said this implant is (null: not stated)


class ImageOut(BaseModel):
    id: uuid.UUID
    position: int
    question: str | None
    filename: str | None
    status: str = Field(json_schema_extra={"enum": list(ImageStatus)})  # pending | stored | processed | invalid | ...
    error: str | None
    sha256: str | None
    size_bytes: int | None
    content_type: str | None
    width: int | None
    height: int | None
    implants: list[ImplantOut]


class RankingOut(BaseModel):
    rank: int
    system: str
    manufacturer: str
    name: str
    score: float
    evidence: dict


class EventOut(BaseModel):
    from_status: str | None = Field(json_schema_extra={"enum": [*CaseStatus, None]})
    to_status: str | None = Field(json_schema_extra={"enum": [*CaseStatus, None]})
    actor: str
    reason: str | None
    at: datetime


class CaseDetail(CaseSummary):
    form_id: str | None
    client_phone: str | None
    notes: str | None
    tooth: str | None = None  # the tooth or region the dentist names ("36", "região de 46"); null: not said
    fields: dict  # question name -> answer text
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_message: str | None
    images: list[ImageOut]
    ranking: list[RankingOut]
    history: list[EventOut]


class RetryAccepted(BaseModel):
    case_id: uuid.UUID
    status: str = case_status()
    job_id: int
