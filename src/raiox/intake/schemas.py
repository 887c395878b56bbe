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


def _text(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


_DIGITS = "^[0-9]{1,40}$"
# The webhook's body as Jotform posts it (docs: /work/shared/docs/jotform-notes.md §1.2; read by
# raiox.intake.formdata and raiox.intake.parse.from_webhook): text fields only, every one a string, most of them empty.
WEBHOOK_FORM = {
    "type": "object",
    "description": "Jotform's submission: text fields only (a file part is refused, 400), at most 2000 of them, the "
                   "body at most 16 MiB. Only `submissionID` and `rawRequest` are required; every other field Jotform "
                   "sends (`action`, `event`, `customParams`, `teamID`, ... mostly empty) is accepted and kept with "
                   "the case, secrets in URLs removed",
    "required": ["submissionID", "rawRequest"],
    "properties": {
        "submissionID": _text("The submission's id (digits): the idempotency key, one case per submission",
                              pattern=_DIGITS, examples=["6084250982513018472"]),
        "rawRequest": _text("The answers: a JSON object in a string (`q<qid>_<name>` per answered question; a file "
                            "question's upload URLs as a list under its bare `<name>`; `temp_upload`, `submitDate` "
                            "in epoch ms, ...)", contentMediaType="application/json",
                            examples=['{"q3_nomeCompleto":{"first":"Ana","last":"Souza"},"q4_email":"ana@example.com",'
                                      '"radiografias":["https://www.jotform.com/uploads/raioxclinic/243231271343446/'
                                      '6084250982513018472/rx.png"],"submitDate":"1735599791882"}']),
        "formID": _text("The form's id (digits); when RAIOX_JOTFORM_FORM_ID is set, another form is refused (422)",
                        pattern=_DIGITS, examples=["243231271343446"]),
        "formTitle": _text("The form's title", examples=["Identificação de Implantes"]),
        "webhookURL": _text("The URL Jotform posted to (its `?token=` is never stored)"),
        "username": _text("The Jotform account (also a segment of the upload URLs)", examples=["raioxclinic"]),
        "type": _text("Submission type", examples=["WEB"]),
        "ip": _text("The submitter's address (personal data)"),
        "pretty": _text("`Label:Value, ...` for people; never parsed (`rawRequest` is)"),
    },
    "additionalProperties": {"type": "string"},
}
WEBHOOK_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": WEBHOOK_FORM},
    "multipart/form-data": {"schema": WEBHOOK_FORM},
}}}
