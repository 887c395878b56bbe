"""Webhook answer (the payload itself is parsed in `raiox.intake.parse`)."""

import uuid

from pydantic import BaseModel, Field


class WebhookAccepted(BaseModel):
    submission_id: str
    case_id: uuid.UUID | None = Field(description="The submission's case; null while it waits for API verification "
                                                  "(RAIOX_JOTFORM_VERIFY_SUBMISSIONS) and has no case yet")
    duplicate: bool = Field(description="True when this submission already had a case: this delivery created "
                                        "nothing (a re-sent webhook, or one reconciliation ingested first)")
    status: str = Field(description="What this delivery did: `received` (the submission has its case, new or "
                                    "duplicate) or `verifying` (queued for verification, no case yet). Not the "
                                    "case's status: see `case_status`")
    case_status: str | None = Field(None, description="The case's status now: `received` for a new case; for a "
                                                      "duplicate, wherever it is (`processing`, `awaiting_review`, "
                                                      "`approved`, `rejected`, `delivered`, `delivery_failed`, "
                                                      "`failed`); null while no case exists (verifying)")
