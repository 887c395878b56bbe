"""`POST /webhooks/jotform`: authenticate (?token=), parse, record the case + its job, answer at once."""

import hmac

from fastapi import APIRouter, Query, Request

from raiox.intake import fastpool, repository, service
from raiox.intake.formdata import read_form
from raiox.intake.parse import from_webhook
from raiox.intake.schemas import WEBHOOK_BODY, WebhookAccepted
from raiox.kit.errors import RaioxError, ServiceUnavailable, Unauthorized, Unprocessable
from raiox.kit.logging import get_logger
from raiox.kit.metrics import WEBHOOKS
from raiox.kit.settings import get_settings

router = APIRouter(tags=["intake"])
log = get_logger(__name__)


def check_token(token: str | None) -> None:
    secret = get_settings().webhook_secret
    if secret is None or not secret.get_secret_value():
        raise ServiceUnavailable("webhook secret not configured: set RAIOX_WEBHOOK_SECRET and add ?token=<it> "
                                 "to the webhook URL in Jotform")
    if not token or not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
        raise Unauthorized("missing or wrong webhook token")


@router.post("/webhooks/jotform", response_model=WebhookAccepted, responses={
    400: {"description": "Not a Jotform submission (no submissionID, rawRequest not a JSON object, a file part...)"},
    401: {"description": "Missing or wrong ?token="},
    413: {"description": "Body over 16 MiB"},
    415: {"description": "Not form data (application/x-www-form-urlencoded or multipart/form-data)"},
    422: {"description": "Another form than RAIOX_JOTFORM_FORM_ID"},
    503: {"description": "RAIOX_WEBHOOK_SECRET not set, or the database unavailable: Jotform's retry, or the "
                         "reconciliation, records it later"}},
    openapi_extra=WEBHOOK_BODY)  # the form is read by hand (intake.formdata), not by a FastAPI body parameter
async def jotform_webhook(
    request: Request,
    token: str | None = Query(None, description="RAIOX_WEBHOOK_SECRET (Jotform can only be given a URL)"),
) -> WebhookAccepted:
    """Jotform's webhook: records the case, its images and a processing job in one transaction."""
    settings = get_settings()
    try:
        check_token(token)
        form = await read_form(request)
        secrets = [s.get_secret_value() for s in (settings.webhook_secret, settings.jotform_api_key) if s]
        sub = from_webhook(form, field_map=settings.jotform_field_map, secrets=secrets,
                           upload_hosts=settings.jotform_upload_hosts)
        if settings.jotform_form_id and sub.form_id and sub.form_id != settings.jotform_form_id:
            raise Unprocessable(f"form {sub.form_id} is not the configured form (RAIOX_JOTFORM_FORM_ID)")
    except RaioxError as exc:
        WEBHOOKS.labels(outcome="rejected" if exc.status_code in (401, 503) else "invalid").inc()
        # the caller's address in clear, deliberately: a refused webhook (a wrong token, a forged body) is a security
        # event, the one line besides a failed panel login that keeps a client's address
        log.warning("webhook_rejected", status=exc.status_code, reason=exc.message,
                    client=request.client.host if request.client else None)
        raise
    async with fastpool.transaction() as conn:
        if settings.jotform_verify_submissions:
            existing = await repository.find_case(conn, sub.submission_id)
            if existing is None:
                await service.enqueue_verification(conn, sub.submission_id, sub.form_id)
            WEBHOOKS.labels(outcome="accepted" if existing is None else "duplicate").inc()
            case_id, case_status = existing or (None, None)
            log.info("webhook_queued_for_verification", submission_id=sub.submission_id,
                     case_id=str(case_id) if case_id else None, case_status=case_status)
            return WebhookAccepted(submission_id=sub.submission_id, case_id=case_id, duplicate=existing is not None,
                                   status="verifying" if existing is None else "received", case_status=case_status)
        result = await service.ingest_on(conn, sub, source="webhook")
    WEBHOOKS.labels(outcome="accepted" if result.created else "duplicate").inc()
    log.info("webhook_accepted", submission_id=sub.submission_id, case_id=str(result.case_id),
             duplicate=not result.created, case_status=result.status, images=len(sub.uploads))
    return WebhookAccepted(submission_id=sub.submission_id, case_id=result.case_id, duplicate=not result.created,
                           status="received", case_status=result.status)
