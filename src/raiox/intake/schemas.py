"""Webhook answer (the payload itself is parsed in `raiox.intake.parse`)."""

import uuid

from pydantic import BaseModel


class WebhookAccepted(BaseModel):
    submission_id: str
    case_id: uuid.UUID | None  # None while a submission waits for API verification
    duplicate: bool  # True when this submission already had a case (nothing new was created)
    status: str  # "received" | "verifying"
