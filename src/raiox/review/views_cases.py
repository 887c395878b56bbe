"""Queue and case pages, and the reviewer's actions (approve, reject, note, resend, retry, mark or remove an
implant, read the implants again)."""

import re
import uuid
from contextlib import contextmanager
from datetime import date
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.kit.deps import DbSession
from raiox.kit.errors import BadRequest, Conflict, Forbidden, TooManyRequests, Unprocessable
from raiox.kit.settings import get_settings
from raiox.models import CaseStatus, User
from raiox.review import casepage, marks, repository, reread, service
from raiox.review.deps import actor, csrf_protect, current_user
from raiox.review.i18n import gettext
from raiox.review.panel import MAX_PAGE, for_operator, redirect, render
from raiox.review.schemas import MESSAGE_MAX, OTHER_SYSTEMS_MAX, REPORT_MESSAGE_MAX

router = APIRouter()
PAGE = 50
STATUSES = [s.value for s in CaseStatus]
# the queue's default: every case waiting for the operator (review, a failed analysis to retry, a failed delivery)
ATTENTION = "attention"
NEEDS_ACTION = (CaseStatus.awaiting_review.value, CaseStatus.failed.value, CaseStatus.delivery_failed.value)
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)  # the day bounds the filter computes stay datetimes


DAY_TYPED = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")  # as the operator types a day: dd/mm/aaaa


def _date(value: str) -> date | None:
    """A day of a filter, typed dd/mm/aaaa or as an ISO date (links, bookmarks, a browser's date picker)."""
    value = (value or "").strip()
    if not value:
        return None
    typed = DAY_TYPED.fullmatch(value)
    try:
        day = date(int(typed[3]), int(typed[2]), int(typed[1])) if typed else date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise for_operator(BadRequest(gettext("queue.bad_date", value=value, first=shown_day(FIRST_DAY),
                                              last=shown_day(LAST_DAY))))
    return day


def shown_day(day: date | None) -> str:
    """A day as the filter's field shows it: dd/mm/aaaa (empty for none)."""
    return day.strftime("%d/%m/%Y") if day else ""


def day_range(date_from: str, date_to: str) -> tuple[date | None, date | None]:
    """The days a filter asks (typed the wrong way round: the range meant)."""
    first, last = _date(date_from), _date(date_to)
    return (last, first) if first and last and first > last else (first, last)


def _text(value: str, required: str | None, too_long: str, limit: int = MESSAGE_MAX) -> str:
    """VALUE stripped; a pt-BR 422 when it is empty (and REQUIRED names the message) or over LIMIT characters."""
    value = (value or "").strip()
    if required and not value:
        raise for_operator(Unprocessable(gettext(required)))
    if len(value) > limit:
        raise for_operator(Unprocessable(gettext(too_long, n=len(value), max=limit)))
    return value


OUTCOMES = ("approved", "rejected")  # `resultado`: the reviewer's decision, whatever became of the case since


@router.get("/")
async def queue(request: Request, status: str = Query(ATTENTION), client: str = "", q: str = "",
                date_from: str = "", date_to: str = "", resultado: str = "", page: int = Query(1, ge=1, le=MAX_PAGE),
                user: User = Depends(current_user), session: AsyncSession = DbSession) -> Response:
    """RESULTADO (approved / rejected) keeps the cases so decided, delivered since or not: the tabs then count
    and list those ("which cases did we reject this month?")."""
    if status not in (*STATUSES, ATTENTION, "all"):  # a typo must not quietly show every case
        raise for_operator(BadRequest(gettext("queue.bad_status", value=status)))
    if resultado not in ("", *OUTCOMES):
        raise for_operator(BadRequest(gettext("queue.bad_outcome", value=resultado)))
    chosen = NEEDS_ACTION if status == ATTENTION else status if status in STATUSES else None
    first, last = day_range(date_from, date_to)
    narrowed = {"client": client.strip() or None, "search": q.strip() or None, "date_from": first, "date_to": last,
                "outcome": resultado or None, "zone": ZoneInfo(get_settings().admin_timezone)}
    items, total = await repository.queue(session, limit=PAGE, offset=(page - 1) * PAGE, status=chosen, **narrowed)
    counts = await repository.status_counts(session, **narrowed)  # each tab's count: the list it opens, same filters
    total_all = sum(counts.values())
    counts[ATTENTION] = sum(counts.get(s, 0) for s in NEEDS_ACTION)
    f = {"status": status, "client": client, "q": q, "date_from": shown_day(first), "date_to": shown_day(last),
         "resultado": resultado}
    context = {"items": items, "total": total, "counts": counts, "statuses": STATUSES, "page": page,
               "total_all": total_all, "pages": max(1, -(-total // PAGE)), "f": f, "outcomes": OUTCOMES,
               "pager_keep": urlencode({name: value for name, value in f.items() if value})}
    return render(request, "queue.html", context)


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                    session: AsyncSession = DbSession) -> Response:
    return render(request, "case.html", await casepage.build(session, case_id))


@router.get("/cases/{case_id}/delivery-state")
async def delivery_state(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                         session: AsyncSession = DbSession) -> Response:
    """The case page's delivery line, which asks for itself every few seconds while the delivery is pending (read
    only); settled, it comes without the trigger, with what the page shows of the delivery as it now is (the status
    badge, the alert above the page, the result's actions: `_delivery_state.html`)."""
    from raiox.catalog import repository as catalog_repo
    from raiox.delivery import repository as delivery_repo

    case = await cases.get_or_404(session, case_id)
    delivery = await delivery_repo.get_delivery(session, case_id)
    if delivery is None:  # nothing to show (a delivery row is never removed: the line just goes)
        return Response(status_code=200, media_type="text/html")
    context = {"case": case, "delivery": delivery, "settled_now": delivery.status != "pending"}
    if context["settled_now"] and case.approved_system_id:  # the actions the page offers for an approval
        systems = await catalog_repo.systems_by_id(session, {case.approved_system_id})
        context["approved_system"] = systems.get(case.approved_system_id)
    return render(request, "_delivery_state.html", context)


@router.get("/systems/search")
async def system_search(request: Request, q: str = "", user: User = Depends(current_user),
                        session: AsyncSession = DbSession) -> Response:
    systems = await repository.search_systems(session, q, limit=15, active_only=True) if q.strip() else []
    return render(request, "_system_options.html", {"systems": systems, "q": q})


@router.post("/cases/{case_id}/approve", dependencies=[Depends(csrf_protect)])
async def approve(request: Request, case_id: uuid.UUID, system_id: str = Form(...), message: str = Form(""),
                  add_to_catalog: bool = Form(False), other_system_ids: list[str] = Form([]),
                  implants: list[str] = Form([]), user: User = Depends(current_user),
                  session: AsyncSession = DbSession) -> Response:
    """IMPLANTS: "fixture id|system id" per implant whose system the reviewer states ("|main": the main system); a
    system stated there and not ticked among the other systems is sent as one too."""
    message = _text(message, None, "case.report_message_too_long", REPORT_MESSAGE_MAX)  # printed on the report
    if add_to_catalog and not await service.may_edit_catalog(session, actor(user)):  # a film becomes a reference
        raise for_operator(Forbidden(gettext("case.add_to_catalog_admin_only")))
    mapped = {fixture: system_id.strip() if system == "main" else system
              for fixture, _, system in (value.partition("|") for value in implants if value)}
    others = service.other_ids(system_id, [*other_system_ids, *mapped.values()], limit=None)
    if len(others) > OTHER_SYSTEMS_MAX:  # ticked and stated for implants together
        raise for_operator(Unprocessable(gettext("case.too_many_others", n=len(others), max=OTHER_SYSTEMS_MAX)))
    if set(mapped) - {str(i) for i in await repository.case_fixture_models(session, case_id)}:
        raise for_operator(Conflict(gettext("case.implant_gone")))  # removed in another tab since the page opened
    await service.approve(session, case_id, system_id, actor=actor(user), message=message,
                          add_to_catalog=add_to_catalog, other_system_ids=others, implants=mapped)
    return redirect(request, f"/cases/{case_id}", done="approved")


@router.post("/cases/{case_id}/reject", dependencies=[Depends(csrf_protect)])
async def reject(request: Request, case_id: uuid.UUID, message: str = Form(""), user: User = Depends(current_user),
                 session: AsyncSession = DbSession) -> Response:
    message = _text(message, "case.reject_required", "case.message_too_long")
    await service.reject(session, case_id, message, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="rejected")


@router.post("/cases/{case_id}/note", dependencies=[Depends(csrf_protect)])
async def note(request: Request, case_id: uuid.UUID, text: str = Form(""), user: User = Depends(current_user),
               session: AsyncSession = DbSession) -> Response:
    text = _text(text, "case.note_required", "case.note_too_long")
    with _in_portuguese():
        await service.add_note(session, case_id, text, actor=actor(user))
    if request.headers.get("hx-request"):
        return render(request, "_audit.html", {"audit": await repository.audit_for_case(session, case_id)})
    return redirect(request, f"/cases/{case_id}", done="note_added")


@router.post("/cases/{case_id}/resend", dependencies=[Depends(csrf_protect)])
async def resend(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                 session: AsyncSession = DbSession) -> Response:
    await service.resend(session, case_id, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="resent")


@contextmanager
def _in_portuguese():
    """The review service's refusals the operator meets on the case page, in their words."""
    try:
        yield
    except service.TooSoon as exc:
        text = (gettext("case.redeliver_wait", n=exc.wait_minutes) if exc.wait_minutes
                else gettext("case.redeliver_today"))
        raise for_operator(TooManyRequests(text)) from exc
    except service.DeliveryRunning as exc:
        raise for_operator(Conflict(gettext("case.delivery_running"))) from exc
    except service.CasePurged as exc:
        raise for_operator(Conflict(gettext("case.purged_no_action"))) from exc
    except service.InvalidEmail as exc:
        raise for_operator(Unprocessable(gettext("case.email_invalid", value=exc.value))) from exc


@router.post("/cases/{case_id}/contact", dependencies=[Depends(csrf_protect)])
async def set_contact(request: Request, case_id: uuid.UUID, email: str = Form(""), user: User = Depends(current_user),
                      session: AsyncSession = DbSession) -> Response:
    """A mistyped address is said beside the field, what was typed kept in it: with HTMX the form alone comes back,
    without JS the case page (422 either way)."""
    with _in_portuguese():  # its other refusals (a purged case...): the message area, as every action's
        try:
            await service.set_client_email(session, case_id, email, actor=actor(user))
        except service.InvalidEmail as exc:
            typed = {"contact_error": gettext("case.email_invalid", value=exc.value), "contact_value": email}
            if request.headers.get("hx-request"):
                case = await cases.get_or_404(session, case_id)
                return render(request, "_contact_form.html", {"case": case} | typed, status_code=422)
            return render(request, "case.html", await casepage.build(session, case_id) | typed, status_code=422)
    return redirect(request, f"/cases/{case_id}", done="contact_saved")


@router.post("/cases/{case_id}/revoke-report", dependencies=[Depends(csrf_protect)])
async def revoke_report(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                        session: AsyncSession = DbSession) -> Response:
    with _in_portuguese():
        await service.revoke_report(session, case_id, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="report_revoked")


@router.post("/cases/{case_id}/redeliver", dependencies=[Depends(csrf_protect)])
async def redeliver(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                    session: AsyncSession = DbSession) -> Response:
    with _in_portuguese():
        await service.redeliver(session, case_id, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="redelivered")


@router.post("/cases/{case_id}/mark-delivered", dependencies=[Depends(csrf_protect)])
async def mark_delivered(request: Request, case_id: uuid.UUID, message: str = Form(""),
                         user: User = Depends(current_user),
                         session: AsyncSession = DbSession) -> Response:
    message = _text(message, "case.delivered_how_required", "case.message_too_long")
    await service.mark_delivered(session, case_id, message, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="marked_delivered")


@router.post("/cases/{case_id}/images/{image_id}/fixtures", dependencies=[Depends(csrf_protect)])
async def mark_implant(request: Request, case_id: uuid.UUID, image_id: uuid.UUID, x0: float = Form(...),
                       y0: float = Form(...), x1: float = Form(...), y1: float = Form(...),
                       user: User = Depends(current_user), session: AsyncSession = DbSession) -> Response:
    """An implant the operator drew on the film: analysed and searched, then the case page again, at that implant."""
    image = await marks.markable_image(session, case_id, image_id)
    box = marks.check_mark(_drawn_box((x0, y0, x1, y1), image), image)
    await session.commit()  # no transaction (nor pool connection) is held through the analysis
    model_id, located = await marks.read_mark(image, box)
    fixture_id = await marks.add_fixture(session, case_id, image_id, located, model_id, actor=actor(user))
    return redirect(request, f"/cases/{case_id}#fixture-{fixture_id}", done="implant_marked")


def _drawn_box(corners: tuple[float, ...], image) -> list[float]:
    """Two opposite corners of a drag, in any order, clipped to the film (a drag may end past its edge)."""
    import math

    if not all(map(math.isfinite, corners)):
        raise for_operator(Unprocessable(gettext("case.mark_invalid")))
    (x0, x1), (y0, y1) = sorted(corners[0::2]), sorted(corners[1::2])
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    x1, y1 = min(x1, float(image.width or x1)), min(y1, float(image.height or y1))
    if x1 - x0 < marks.MIN_MARK or y1 - y0 < marks.MIN_MARK:
        raise for_operator(Unprocessable(gettext("case.mark_too_small", n=marks.MIN_MARK)))
    return [x0, y0, x1, y1]


@router.post("/cases/{case_id}/reread", dependencies=[Depends(csrf_protect)])
async def reread_implants(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                          session: AsyncSession = DbSession) -> Response:
    """The case's implants read again with the current models (the page offers it after the embedder changed)."""
    try:
        found = await reread.films(session, case_id)
    except reread.CatalogMissing as exc:
        raise for_operator(Conflict(gettext("case.reread_catalog_missing", model=exc.model_id))) from exc
    await session.commit()  # no transaction (nor pool connection) is held through the analysis
    await reread.store(session, case_id, await reread.read(found), actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="reread")


@router.post("/cases/{case_id}/fixtures/{fixture_id}/delete", dependencies=[Depends(csrf_protect)])
async def remove_implant(request: Request, case_id: uuid.UUID, fixture_id: uuid.UUID,
                         user: User = Depends(current_user),
                         session: AsyncSession = DbSession) -> Response:
    await marks.remove_fixture(session, case_id, fixture_id, actor=actor(user))
    return redirect(request, f"/cases/{case_id}", done="implant_removed")


@router.post("/cases/{case_id}/retry", dependencies=[Depends(csrf_protect)])
async def retry(request: Request, case_id: uuid.UUID, user: User = Depends(current_user),
                session: AsyncSession = DbSession) -> Response:
    from raiox.intake.service import retry_case

    case = await cases.get_or_404(session, case_id, for_update=True)
    refetch = case.status == CaseStatus.awaiting_review  # only the films that failed, the rest as it is
    await retry_case(session, case, actor=actor(user))  # audited there (case.retry), as the API's retry
    return redirect(request, f"/cases/{case_id}", done="refetch_queued" if refetch else "retried")
