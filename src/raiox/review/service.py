"""Review decisions: approve (with the chosen system) or reject a case, notes, delivery resends.

An approval names one main system and, when the films show implants of several systems, the others in order
(`other_system_ids`); the dentist receives them all.

Every decision locks the case row and checks its status, so double clicks and retries approve once:
an identical repeated decision returns the first one's result, a different one is a 409.
"""

import math
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.delivery import repository as delivery_repo
from raiox.delivery import service as delivery
from raiox.kit.audit import audit  # noqa: F401 - review.service.audit is the one audit function, re-exported
from raiox.kit.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from raiox.models import (
    Case, CaseStatus, ImplantSystem, ReferenceEmbedding, ReferenceImage,
)
from raiox.review import repository
from raiox.review.schemas import MESSAGE_MAX, OTHER_SYSTEMS_MAX, REPORT_MESSAGE_MAX

MANUAL = "manual"  # Delivery.status of a result the reviewer says reached the dentist another way
# a failed case (no usable film) is rejected to tell the dentist; it is never approved (nothing was analysed)
REJECTABLE = {CaseStatus.awaiting_review, CaseStatus.failed}
DECIDED = {CaseStatus.approved, CaseStatus.rejected, CaseStatus.delivered, CaseStatus.delivery_failed}


def decision_view(case: Case) -> dict:
    return {
        "case_id": str(case.id),
        "status": case.status,
        "decision": "approved" if case.approved_system_id else "rejected",
        "system_id": case.approved_system_id,
        "other_system_ids": list(case.other_system_ids or []),
        "implants": [{"fixture_id": f, "system_id": s} for f, s in (case.implant_systems or {}).items()],
        "message": case.review_message,
        "reviewed_by": case.reviewed_by,
        "reviewed_at": case.reviewed_at,  # serialised by DecisionResponse as CaseDetail does
    }


def _same(case: Case, system_id: str | None, message: str | None, others: list[str] = (),
          implants: dict[str, str] | None = None) -> bool:
    return (case.status in DECIDED and case.reviewed_at is not None and case.approved_system_id == system_id
            and list(case.other_system_ids or []) == list(others) and (case.review_message or None) == (message or None)
            and dict(case.implant_systems or {}) == dict(implants or {}))


def other_ids(system_id: str, others: list[str] | None, limit: int | None = OTHER_SYSTEMS_MAX) -> list[str]:
    """OTHERS stripped, without blanks, repeats or the main SYSTEM_ID, in the reviewer's order; a 422 past LIMIT."""
    chosen = {system_id.strip()}
    out = []
    for other in (o.strip() for o in others or []):
        if other and other not in chosen:
            chosen.add(other)
            out.append(other)
    if limit is not None and len(out) > limit:
        raise Unprocessable(f"{len(out)} other systems; an approval names at most {limit} besides the main one")
    return out


def implant_map(implants: list | dict | None) -> dict[str, str]:
    """Fixture id -> system id from the request's pairs (objects with fixture_id / system_id, or a dict); a fixture
    named twice with different systems is a 422."""
    pairs = implants.items() if isinstance(implants, dict) else [(i.fixture_id, i.system_id) for i in implants or []]
    out: dict[str, str] = {}
    for fixture_id, system_id in pairs:
        key, system_id = str(fixture_id), system_id.strip()
        if out.get(key, system_id) != system_id:
            raise Unprocessable(f"implant {key} is given two systems ({out[key]!r} and {system_id!r})")
        out[key] = system_id
    return out


async def _check_implants(session: AsyncSession, case: Case, implants: dict[str, str], approved: list[str]) -> None:
    """Every implant is one of the case's and is given one of the approved systems."""
    stray = [s for s in implants.values() if s not in approved]
    if stray:
        raise Unprocessable(f"implants: system {stray[0]!r} is neither the approved system nor one of other_system_ids")
    mine = {str(i) for i in await repository.case_fixture_models(session, case.id)}
    unknown = [f for f in implants if f not in mine]
    if unknown:
        raise Unprocessable(f"implants: {unknown[0]} is not an implant of this case")


async def _systems(session: AsyncSession, ids: list[str]) -> list[ImplantSystem]:
    systems = await delivery_repo.systems_in_order(session, ids)
    unknown = [i for i, system in zip(ids, systems, strict=True) if system is None]
    if unknown:
        raise Unprocessable(f"unknown implant system: {', '.join(map(repr, unknown))}")
    return systems


def not_awaiting(case: Case, verb: str) -> Conflict:
    label = cases.STATUS_LABELS_PT.get(case.status, case.status)
    return Conflict(f"case {case.id} is not awaiting review (status: {case.status} / {label}); "
                    f"only cases awaiting review can be {verb}")


def system_label(system) -> str:
    """A system as the panel names it, in the audit log too: "Grand Morse (Neodent)"."""
    return f"{system.name} ({system.manufacturer})"


async def _decide(session: AsyncSession, case: Case, to: CaseStatus, *, actor: str, system_id: str | None,
                  message: str | None, others: list[str] = (), implants: dict[str, str] | None = None) -> None:
    await cases.transition(session, case, to, actor=actor, reason=message)
    case.approved_system_id, case.other_system_ids = system_id, list(others)
    case.implant_systems = dict(implants or {})
    case.reviewed_by, case.reviewed_at, case.review_message = actor, datetime.now(UTC), message or None
    await session.flush()
    await delivery.enqueue(session, case, actor="system:review")


async def approve(session: AsyncSession, case_id: uuid.UUID, system_id: str, *, actor: str,
                  message: str | None = None, add_to_catalog: bool = False,
                  other_system_ids: list[str] | None = None, implants: list | dict | None = None) -> dict:
    """IMPLANTS (optional): which of the approved systems each implant of the case is (fixture id -> system id)."""
    message, system_id = (message or "").strip() or None, system_id.strip()
    if message and len(message) > REPORT_MESSAGE_MAX:  # it prints on the one-page report
        raise Unprocessable(f"the message to the dentist has {len(message)} characters; at most {REPORT_MESSAGE_MAX}, "
                            "so that the report fits one A4 page")
    case = await cases.get_or_404(session, case_id, for_update=True)
    others, mapped = other_ids(system_id, other_system_ids), implant_map(implants)
    if case.status != CaseStatus.awaiting_review:
        if _same(case, system_id, message, others, mapped):
            return decision_view(case)
        raise not_awaiting(case, "approved")
    system, *other_systems = await _systems(session, [system_id, *others])
    await _check_implants(session, case, mapped, [system.id, *others])
    await _decide(session, case, CaseStatus.approved, actor=actor, system_id=system.id, message=message, others=others,
                  implants=mapped)
    added = await add_case_references(session, case, system.id, first_only=bool(others),
                                      implants=mapped) if add_to_catalog else []
    await audit(session, actor, "case.approve", case.id, system.id, system=system_label(system),
                others=[system_label(o) for o in other_systems] or None,
                implants=mapped or None, message=message, references_added=len(added))
    return decision_view(case)


async def reject(session: AsyncSession, case_id: uuid.UUID, message: str, *, actor: str) -> dict:
    """Reject with MESSAGE to the dentist: a case awaiting review, or a `failed` one (no film could be downloaded or
    read, none was sent): its dentist is told why and what to send, rather than never hearing back."""
    message = (message or "").strip()
    if not message:
        raise Unprocessable("a rejection needs a message to the dentist")
    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status not in REJECTABLE:
        if _same(case, None, message):
            return decision_view(case)
        raise not_awaiting(case, "rejected (failed ones too)")
    await _decide(session, case, CaseStatus.rejected, actor=actor, system_id=None, message=message)
    await audit(session, actor, "case.reject", case.id, message=message)
    return decision_view(case)


async def add_note(session: AsyncSession, case_id: uuid.UUID, text: str, *, actor: str) -> None:
    text = (text or "").strip()
    if not text:
        raise Unprocessable("the note is empty")
    if len(text) > MESSAGE_MAX:
        raise Unprocessable(f"the note has {len(text)} characters; at most {MESSAGE_MAX}")
    case = await cases.get_or_404(session, case_id)
    _not_purged(case)  # a note would bring personal data back to a case whose data were removed
    await audit(session, actor, "case.note", case.id, note=text)


async def set_client_email(session: AsyncSession, case_id: uuid.UUID, email: str, *, actor: str) -> None:
    """Correct the dentist's e-mail (a typo in the form): later deliveries go there. Audited with both addresses."""
    from raiox.intake.parse import EMAIL

    email = (email or "").strip()
    if not EMAIL.match(email) or len(email) > 320:
        raise InvalidEmail(email)
    case = await cases.get_or_404(session, case_id, for_update=True)
    _not_purged(case)
    if case.client_email == email:
        return
    before, case.client_email = case.client_email, email
    await audit(session, actor, "case.contact", case.id, email_before=before, email=email)


class InvalidEmail(Unprocessable):
    """Not an e-mail address (VALUE, the first 80 characters)."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not an e-mail address: {value[:80]!r}")
        self.value = value[:80]


class CasePurged(Conflict):
    """The case's films and personal data were removed (data retention): nothing more is added or sent."""


def _not_purged(case: Case) -> None:
    if case.purged_at is not None:
        raise CasePurged(f"case {case.id}'s data were removed (data retention)")


async def resend(session: AsyncSession, case_id: uuid.UUID, *, actor: str) -> None:
    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.delivery_failed:
        raise Conflict(f"case {case.id} is {case.status}; only a failed delivery can be resent")
    record = await delivery_repo.get_delivery(session, case.id, for_update=True)
    if record is not None:  # the operator decided: an e-mail whose outcome is unknown is sent again
        record.email_attempted_at = None
    await delivery.enqueue(session, case, actor=actor, action="delivery.resend")


REPORTABLE = {CaseStatus.approved, CaseStatus.delivered, CaseStatus.delivery_failed}


async def revoke_report(session: AsyncSession, case_id: uuid.UUID, *, actor: str) -> None:
    """Every report link of the case stops working (a new `report_key`; e.g. the e-mail went to a wrong address).
    Nothing is sent: `redeliver` sends the dentist a new link."""
    from raiox.delivery.report import new_key

    case = await cases.get_or_404(session, case_id, for_update=True)
    if not case.approved_system_id or case.status not in REPORTABLE:
        raise Conflict(f"case {case.id} has no report (status: {case.status}); only approved cases have report links")
    _not_purged(case)
    await _no_delivery_running(session, case)
    case.report_key = new_key()
    await audit(session, actor, "report.revoke", case.id)


async def redeliver(session: AsyncSession, case_id: uuid.UUID, *, actor: str) -> None:
    """A delivered result sent again through every channel (Jotform edited again, a new e-mail), with a new report
    link (the old ones revoked): for a dentist who lost the e-mail or whose link expired."""
    from raiox.delivery.report import new_key

    case = await cases.get_or_404(session, case_id, for_update=True)
    if case.status != CaseStatus.delivered:
        raise Conflict(f"case {case.id} is {case.status}; only a delivered result can be sent again "
                       "(a failed delivery is resent)")
    _not_purged(case)
    await _no_delivery_running(session, case)
    await _not_too_often(session, case)
    if case.approved_system_id:
        case.report_key = new_key()
    record = await delivery_repo.get_delivery(session, case.id, for_update=True)
    if record is not None:  # every channel again, and a new e-mail (not the old one's id)
        record.jotform_done_at = record.email_sent_at = record.email_message_id = record.email_attempted_at = None
    back = CaseStatus.approved if case.approved_system_id else CaseStatus.rejected
    await cases.transition(session, case, back, actor=actor, reason="sent again to the dentist")
    await delivery.enqueue(session, case, actor=actor, action="delivery.redeliver")


REDELIVER_WAIT = timedelta(minutes=10)  # between two "send again" of one case
REDELIVER_PER_DAY = 3  # "send again" of one case in 24 hours: the dentist is not to be flooded


class DeliveryRunning(Conflict):
    """A delivery job of the case is queued or running."""


class TooSoon(TooManyRequests):
    """Sent again too recently or too often; WAIT_MINUTES: how long until it may be (None: not today, the panel's
    words); RETRY_AFTER: the seconds until it may be, either way (the API's `Retry-After`)."""

    def __init__(self, message: str, wait_minutes: int | None, retry_after: timedelta) -> None:
        super().__init__(message)
        self.wait_minutes = wait_minutes
        self.retry_after = max(1, math.ceil(retry_after.total_seconds()))


async def _no_delivery_running(session: AsyncSession, case: Case) -> None:
    """A delivery job of the case queued or running would send (or revoke) the link this action changes."""
    if await delivery_repo.delivery_in_flight(session, case.id):
        raise DeliveryRunning(f"a delivery of case {case.id} is in progress; wait until it ends")


async def _not_too_often(session: AsyncSession, case: Case) -> None:
    now = datetime.now(UTC)
    sent = await repository.audit_times(session, case.id, "delivery.redeliver", now - timedelta(days=1))
    if sent and now - sent[0] < REDELIVER_WAIT:
        wait = int((REDELIVER_WAIT - (now - sent[0])).total_seconds() // 60) + 1
        raise TooSoon(f"case {case.id} was sent again {int((now - sent[0]).total_seconds() // 60)} min ago; "
                      f"wait {wait} min more", wait, REDELIVER_WAIT - (now - sent[0]))
    if len(sent) >= REDELIVER_PER_DAY:  # until the oldest send that keeps the count at the limit is a day old
        raise TooSoon(f"case {case.id} was sent again {len(sent)} times in 24 hours (at most {REDELIVER_PER_DAY})",
                      None, sent[REDELIVER_PER_DAY - 1] + timedelta(days=1) - now)


async def may_edit_catalog(session: AsyncSession, actor: str, token_scopes: list[str] | None = None) -> bool:
    """Who may add case films to the catalog: admins, not reviewers; API tokens with the `catalog` scope (TOKEN_SCOPES:
    the scopes of the token ACTOR used)."""
    kind, _, email = actor.partition(":")
    if kind != "user":
        return bool({"catalog", "all"} & set(token_scopes or []))
    user = await repository.user_by_email(session, email)
    return user is not None and user.role == "admin"


async def mark_delivered(session: AsyncSession, case_id: uuid.UUID, message: str, *, actor: str) -> None:
    """The result reached the dentist outside Raiox AI (a failed delivery that cannot succeed, e.g. a submission
    deleted in Jotform): MESSAGE says how. The case becomes `delivered`; a pending delivery job then skips it.
    Repeating it (a double click) is harmless."""
    message = (message or "").strip()
    if not message:
        raise Unprocessable("say how the result reached the dentist")
    if len(message) > MESSAGE_MAX:
        raise Unprocessable(f"the message has {len(message)} characters; at most {MESSAGE_MAX}")
    case = await cases.get_or_404(session, case_id, for_update=True)
    record = await delivery_repo.get_delivery(session, case.id, for_update=True)
    if case.status == CaseStatus.delivered and record is not None and record.status == MANUAL:
        if await repository.last_event_reason(session, case.id) == message:
            return  # the same mark again (a double click)
        raise Conflict(f"case {case.id} was already marked delivered with another note")
    if case.status != CaseStatus.delivery_failed:
        raise Conflict(f"case {case.id} is {case.status}; only a failed delivery can be marked as delivered")
    await cases.transition(session, case, CaseStatus.delivered, actor=actor, reason=message)
    if record is not None:
        record.status = MANUAL
    await audit(session, actor, "delivery.mark_delivered", case.id, message=message)


def _rank(results, system_id: str) -> int:
    return min((r.rank for r in results if r.system_id == system_id), default=99)


async def add_case_references(session: AsyncSession, case: Case, system_id: str, first_only: bool = False,
                              implants: dict[str, str] | None = None) -> list[ReferenceImage]:
    """Each processed image of CASE becomes a reference of SYSTEM_ID, reusing its fixture embedding
    (same model, no re-embedding): the fixture whose results rank the system best, else the most
    confident one. Images already a reference (same sha256, of this or any other system) are skipped. FIRST_ONLY (the
    approval names other systems too, so a film may show only those): only films with an implant whose first
    candidate is SYSTEM_ID. IMPLANTS (fixture id -> system, the reviewer's mapping): a film with a mapped implant
    becomes a reference of that implant's system instead, boxed on it (the most confident mapped one).

    A reference stores its own copy of the film without the file's metadata (``_metadata_free_copy``), never the
    case's object: the catalog keeps the picture after the case is purged, not the patient's name in a DICOM header
    or the GPS position in a phone photo's EXIF. A film whose stored object is gone is left out."""
    images = [i for i in await repository.case_images(session, case.id) if i.storage_key and i.sha256]
    fixtures = await repository.fixtures_with_results(session, [i.id for i in images])
    added = []
    for image in images:
        mine = [(f, r) for f, r in fixtures if f.case_image_id == image.id]
        if not mine or await repository.references_by_sha(session, image.sha256):
            continue  # already a reference: of this system, or of another one (an image never serves two systems)
        chosen = _reference_fixture(mine, system_id, first_only, implants or {})
        if chosen is None:
            continue
        try:
            key = await _metadata_free_copy(image)
        except (NotFound, Unprocessable):  # the object lost, or no longer readable (a lower pixel cap since)
            continue
        added.append(await _add_reference(session, case, image, key, *chosen))
    return added


async def _metadata_free_copy(image) -> str:
    """The storage key of a copy of IMAGE's film without its metadata (``raiox.vision.metadata_free``: the same
    pixels, so the fixture's box and embedding fit it), stored once (content-addressed)."""
    import asyncio

    from raiox.kit.settings import get_settings
    from raiox.kit.storage import content_key, get_storage
    from raiox.vision import metadata_free

    storage = get_storage()
    data = await storage.get(image.storage_key)
    clean, content_type = await asyncio.to_thread(metadata_free, data, image.filename,
                                                  max_pixels=get_settings().max_pixels)
    key, _ = content_key(clean)
    if not await storage.exists(key):
        await storage.put(key, clean, content_type)
    return key


def _reference_fixture(mine: list, system_id: str, first_only: bool, implants: dict[str, str]):
    """(fixture, system) a film's reference is made of, None when the film is not to be added."""
    mapped = [f for f, _r in mine if str(f.id) in implants]
    if mapped:
        fixture = max(mapped, key=lambda f: f.confidence)
        return fixture, implants[str(fixture.id)]
    fixture, results = min(mine, key=lambda fr: (_rank(fr[1], system_id), -fr[0].confidence))
    return None if first_only and _rank(results, system_id) != 1 else (fixture, system_id)


async def _add_reference(session: AsyncSession, case: Case, image, storage_key: str, fixture,
                         system_id: str) -> ReferenceImage:
    ref = ReferenceImage(system_id=system_id, storage_key=storage_key, sha256=image.sha256,
                         width=image.width, height=image.height, source="case",
                         origin=f"case:{case.id}/image:{image.id}", box=fixture.box, metadata_free=True)
    session.add(ref)
    await session.flush()
    await repository.add_embedding(session, ReferenceEmbedding(
        reference_image_id=ref.id, system_id=system_id, model_id=fixture.model_id, embedding=fixture.embedding))
    return ref


async def remove_reference(session: AsyncSession, system_id: str, reference_id: uuid.UUID, *, actor: str) -> dict:
    """A reference image that should not be in the catalog (a wrong system, a bad film): its row and vectors go, and
    its stored object unless a case or another reference still uses it (deleted before the caller commits: a storage
    outage leaves the reference in place, to try again). Audited `catalog.reference_remove`; what was removed is
    returned. NotFound when SYSTEM_ID has no such reference."""
    from raiox.cases.repository import keys_in_use
    from raiox.kit.storage import get_storage

    ref = await repository.system_reference(session, system_id, reference_id)
    if ref is None:
        raise NotFound(f"system {system_id} has no reference image {reference_id}")
    details = {"origin": ref.origin, "sha256": ref.sha256, "source": ref.source, "box": ref.box}
    await repository.delete_reference(session, ref.id)
    details["object_deleted"] = not await keys_in_use(session, {ref.storage_key})
    await audit(session, actor, "catalog.reference_remove", target=system_id, **details)
    if details["object_deleted"]:
        await get_storage().delete(ref.storage_key)
    return details
