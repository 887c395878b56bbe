"""Request and response bodies of the review API."""

from pydantic import AliasChoices, BaseModel, Field

MESSAGE_MAX = 5000  # characters of a message to the dentist or an internal note (API and panel alike)


class ApproveRequest(BaseModel):
    system_id: str = Field(min_length=1, max_length=120, validation_alias=AliasChoices("system_id", "system"),
                           description="Catalog implant system id (stable slug)")
    message: str | None = Field(default=None, max_length=MESSAGE_MAX, description="Optional message to the dentist")
    add_to_catalog: bool = Field(default=False, description="Add the case images as references of the system")


class RejectRequest(BaseModel):
    message: str = Field(min_length=1, max_length=MESSAGE_MAX, description="Message to the dentist (why, what to send)")


class DecisionResponse(BaseModel):
    case_id: str
    status: str
    decision: str  # approved | rejected
    system_id: str | None
    message: str | None
    reviewed_by: str | None
    reviewed_at: str | None
