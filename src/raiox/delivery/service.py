"""Result delivery: write the decision into the Jotform submission and e-mail the dentist, once.

Each channel records its own completion in `Delivery` (jotform_done_at, email_sent_at); a retry or a
resend only redoes what is not done. Transient failures (429, 5xx, timeouts) are retried with
exponential backoff (kit.jotform's client for Jotform); after the last attempt the case becomes `delivery_failed`
with the reason.
"""

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.delivery import email, repository
from raiox.delivery.report import report_url
from raiox.delivery.templates import DISCLAIMER, facts, render
from raiox.kit import jobs
from raiox.kit.audit import audit
from raiox.kit.db import session_scope
from raiox.kit.jotform import JotformError, get_jotform_client
from raiox.kit.logging import get_logger, mask_addresses
from raiox.kit.settings import Settings, get_settings
from raiox.models import Case, CaseStatus, Delivery

log = get_logger(__name__)
TASK = "deliver_result"
# a title the dentist typed before the name (Jotform's full-name prefix, or in the name itself): "Dra. Ana", "dr Zé"
TITLE = re.compile(r"(?i)^(dra|dr|doutora|doutor)\b\.?")
DELIVERABLE = {CaseStatus.approved, CaseStatus.rejected, CaseStatus.delivery_failed}


@dataclass
class Result:
    approved: bool
    system: str
    manufacturer: str
    message: str
    report_url: str
    submission_id: str
    client_name: str
    others: list[tuple[str, str]] = field(default_factory=list)  # (system, manufacturer) after the main one
    # which system each implant is, when the reviewer said it: (film number, implant number, system, manufacturer)
    implants: list[tuple[int, int, str, str]] = field(default_factory=list)
    resent: bool = False  # sent again on the reviewer's request: earlier report links no longer work
    # what orders parts, per approved system in `systems` order ("conexão ... · plataforma ... mm"; "" unknown)
    details: list[str] = field(default_factory=list)
    # when `report_url` stops working (RAIOX_REPORT_LINK_DAYS after it was signed; the e-mail names the last full day)
    link_expires: datetime | None = None
    tooth: str = ""  # the tooth or region the dentist named on the form ("" not said)

    @property
    def salutation(self) -> str:
        """The e-mail's greeting, pt-BR, as one writes to a dentist: "Prezado(a) Dr(a). Ana Souza,"; a name that
        already carries its title keeps it ("Prezada Dra. Ana Souza,"), no name "Prezado(a) doutor(a),"."""
        name = " ".join(self.client_name.split())
        title = TITLE.match(name)
        if title is None:
            return f"Prezado(a) Dr(a). {name}," if name else "Prezado(a) doutor(a),"
        return f"{'Prezada' if title.group(1).lower().startswith(('dra', 'doutora')) else 'Prezado'} {name},"

    @property
    def systems(self) -> list[tuple[str, str]]:
        """Every approved (system, manufacturer), the main one first."""
        return [(self.system, self.manufacturer), *self.others] if self.approved else []

    def jotform_values(self) -> dict[str, str]:
        """Each meaning `RAIOX_JOTFORM_RESULT_FIELDS` may map to a question; `disclaimer` (the e-mail's decision-aid
        sentence) only with an approved result (a rejection has none to weigh), `tooth` as the dentist named it."""
        status = "Aprovado" if self.approved else "Rejeitado"
        listed = "; ".join(f"{name} ({manufacturer})" for name, manufacturer in self.systems)
        return {"system": self.system, "manufacturer": self.manufacturer, "message": self.message,
                "report": self.report_url, "status": status, "systems": listed, "implants": self.implants_text(),
                "disclaimer": DISCLAIMER if self.approved else "", "tooth": self.tooth}

    def implants_text(self) -> str:
        """"Radiografia 1, implante 1: Name (Manufacturer); ..." (pt-BR: the dentist reads it); empty when not
        stated."""
        return "; ".join(f"Radiografia {film}, implante {n}: {name} ({manufacturer})"
                         for film, n, name, manufacturer in self.implants)


async def enqueue(session: AsyncSession, case: Case, *, actor: str, action: str = "delivery.enqueue") -> Delivery:
    """Create (or re-arm) the case's delivery and defer the job in the caller's transaction."""
    delivery = await repository.get_delivery(session, case.id, for_update=True)
    if delivery is None:
        delivery = Delivery(case_id=case.id, attempts=0)
        session.add(delivery)
    delivery.status, delivery.last_error = "pending", None
    await session.flush()
    await jobs.defer_in_session(session, TASK, {"case_id": str(case.id)}, lock=f"deliver:{case.id}")
    await audit(session, actor, action, case.id, str(delivery.id))
    return delivery


async def build_result(session: AsyncSession, case: Case) -> Result:
    system = await repository.get_system(session, case.approved_system_id)
    others = await repository.systems_in_order(session, list(case.other_system_ids or [])) if system else []
    others = [o for o in others if o is not None]
    days = get_settings().report_link_days
    # taken before the link is signed (whole seconds, as its timestamp): never later than the moment the link dies
    signed = datetime.now(UTC).replace(microsecond=0)
    return Result(
        approved=system is not None,
        system=system.name if system else "",
        manufacturer=system.manufacturer if system else "",
        message=case.review_message or "",
        report_url=report_url(case.id, case.report_key) if system else "",
        submission_id=case.jotform_submission_id,
        client_name=case.client_name or "",
        others=[(o.name, o.manufacturer) for o in others],
        implants=await implant_lines(session, case) if system else [],
        resent=await repository.was_sent_again(session, case.id),
        details=[" · ".join(facts(s)) for s in (system, *others)] if system else [],
        link_expires=signed + timedelta(days=days) if system else None,
        tooth=case.tooth or "",
    )


async def implant_lines(session: AsyncSession, case: Case) -> list[tuple[int, int, str, str]]:
    """(film, implant, system, manufacturer) for each implant the approval maps, in the films' order."""
    mapped = dict(case.implant_systems or {})
    places = await repository.implant_places(session, list(mapped))
    systems = {s.id: s for s in await repository.systems_in_order(session, sorted(set(mapped.values()))) if s}
    lines = [(film, n, systems[mapped[f]].name, systems[mapped[f]].manufacturer)
             for f, (film, n, _box) in places.items() if mapped[f] in systems]
    return sorted(lines)


def jotform_fields(settings: Settings, result: Result) -> dict[str, str]:
    values = result.jotform_values()
    return {qid: values[meaning] for meaning, qid in settings.jotform_result_fields.items() if meaning in values}


# an earlier attempt handed the e-mail to the SMTP server and could not record the outcome: sending it again could
# give the dentist two e-mails, so the operator decides (resend clears the attempt; or mark delivered)
UNCERTAIN = ("email: an earlier attempt may have sent the e-mail (the server was given it, the outcome could not be "
             "recorded); check with the dentist, then resend or mark as delivered")


async def with_retries(settings: Settings, label: str, call: Callable[[], Awaitable],
                       case_id: uuid.UUID | None = None) -> object:
    for attempt in range(settings.delivery_retries):
        try:
            return await call()
        except email.EmailError as exc:
            if not exc.retriable or attempt == settings.delivery_retries - 1:
                raise
            delay = min(settings.delivery_backoff_s * 2**attempt, 60)
            log.warning("delivery_retry", case_id=str(case_id) if case_id else None, channel=label,
                        attempt=attempt + 1, delay_s=delay, error=mask_addresses(str(exc)))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _mark(case_id: uuid.UUID, **values) -> None:
    async with session_scope() as session:
        delivery = await repository.get_delivery(session, case_id, for_update=True)
        for name, value in values.items():
            setattr(delivery, name, value)


async def _send_jotform(settings: Settings, case_id: uuid.UUID, result: Result) -> None:
    fields = jotform_fields(settings, result)
    async with get_jotform_client(settings, retries=settings.delivery_retries - 1, backoff=settings.delivery_backoff_s,
                                  timeout=settings.jotform_timeout_s) as api:
        await api.edit_submission(result.submission_id, fields)
    await _mark(case_id, jotform_done_at=datetime.now(UTC))
    log.info("delivery_jotform_done", case_id=str(case_id), fields=sorted(fields))


async def _send_email(settings: Settings, case_id: uuid.UUID, result: Result, to: str, message_id: str) -> None:
    context = {"result": result}
    msg = email.build(
        settings, to=email.address(result.client_name, to), message_id=message_id,
        subject=render("email_subject.txt", **context).strip(),
        text=render("email.txt", **context), html=render("email.html", **context),
    )
    await _mark(case_id, email_attempted_at=datetime.now(UTC))  # before the send: see `UNCERTAIN`
    try:
        outcome = await with_retries(settings, "email", lambda: asyncio.to_thread(email.send, settings, msg), case_id)
    except email.EmailError:  # refused or never reached the server: nothing went out, a later attempt may send it
        await _mark(case_id, email_attempted_at=None)
        raise
    await _mark(case_id, email_sent_at=datetime.now(UTC))
    log.info("delivery_email_sent", case_id=str(case_id), message_id=message_id, uncertain=outcome.uncertain)


async def _prepare(settings: Settings, case_id: uuid.UUID):
    async with session_scope() as session:
        case = await cases.get_or_404(session, case_id)
        if case.status not in DELIVERABLE:
            return None
        delivery = await repository.get_delivery(session, case_id, for_update=True)
        if delivery is None:
            delivery = Delivery(case_id=case_id, attempts=0)
            session.add(delivery)
        delivery.attempts = (delivery.attempts or 0) + 1
        result = await build_result(session, case)
        want_jotform = bool(settings.jotform_api_key and jotform_fields(settings, result)
                            and case.jotform_submission_id)
        want_email = bool(email.configured(settings) and case.client_email)
        if want_email and not delivery.email_message_id:
            delivery.email_message_id = email.new_message_id(settings)  # fixed before any send
        uncertain = want_email and delivery.email_sent_at is None and delivery.email_attempted_at is not None
        plan = {
            "jotform": want_jotform and delivery.jotform_done_at is None,
            "email": want_email and delivery.email_sent_at is None and not uncertain,
            "email_uncertain": uncertain,
            "any": want_jotform or want_email,
        }
        return result, plan, case.client_email, delivery.email_message_id


async def _finish(case_id: uuid.UUID, errors: list[str]) -> str:
    async with session_scope() as session:
        case = await cases.get_or_404(session, case_id, for_update=True)
        if case.status not in DELIVERABLE:  # marked delivered by the reviewer while this attempt ran
            return case.status
        delivery = await repository.get_delivery(session, case_id, for_update=True)
        if errors:
            reason = "; ".join(errors)
            delivery.status, delivery.last_error = "failed", reason
            await cases.transition(session, case, CaseStatus.delivery_failed, actor="system:delivery", reason=reason)
        else:
            delivery.status, delivery.last_error = "delivered", None
            await cases.transition(session, case, CaseStatus.delivered, actor="system:delivery")
        return case.status


async def give_up(case_id: uuid.UUID, reason: str) -> str:
    """The job's last attempt failed unexpectedly: show `delivery_failed` (resend stays possible)."""
    async with session_scope() as session:
        case = await cases.get_or_404(session, case_id)
        if case.status not in DELIVERABLE or await repository.get_delivery(session, case_id) is None:
            return case.status
    return await _finish(case_id, [reason[:1000]])


async def deliver(case_id: uuid.UUID) -> str:
    """Deliver the decision on CASE_ID through every configured channel not yet done; the new status."""
    settings = get_settings()
    prepared = await _prepare(settings, case_id)
    if prepared is None:
        log.info("delivery_skipped", case_id=str(case_id), reason="case not awaiting delivery")
        return "skipped"
    result, plan, to, message_id = prepared
    errors = [] if plan["any"] else [
        "no delivery channel: configure RAIOX_JOTFORM_API_KEY + RAIOX_JOTFORM_RESULT_FIELDS, or RAIOX_SMTP_HOST"
        " + RAIOX_SMTP_FROM with the dentist's e-mail on the case"
    ]
    if plan["jotform"]:
        try:
            await _send_jotform(settings, case_id, result)
        except JotformError as exc:
            errors.append(f"jotform: {exc.message}")
    if plan["email_uncertain"]:
        errors.append(UNCERTAIN)
    if plan["email"]:
        try:
            await _send_email(settings, case_id, result, to, message_id)
        except email.EmailError as exc:
            errors.append(f"email: {exc}")
    status = await _finish(case_id, errors)
    log.info("delivery_finished", case_id=str(case_id), status=status, errors=[mask_addresses(e) for e in errors])
    return status
