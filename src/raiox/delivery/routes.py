"""The one-page case report, reached through a signed, expiring link (no login: the link is the key)."""

import base64
import uuid

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.cases import service as cases
from raiox.delivery import repository
from raiox.delivery.report import InvalidLink, LinkExpired, LinkRevoked, case_from_token
from raiox.delivery.templates import render
from raiox.kit.deps import DbSession
from raiox.kit.errors import NotFound, RaioxError
from raiox.kit.settings import get_settings
from raiox.models import CaseStatus, ImageStatus

router = APIRouter(tags=["delivery"])
REPORTABLE = {CaseStatus.approved, CaseStatus.delivered, CaseStatus.delivery_failed}


class ReportPurged(NotFound):
    """The case's films and data were removed (data retention, raiox.cases.retention): gone for good."""

    status_code = 410
CASE_SOURCE = "case"  # ReferenceImage.source of a reference added from a reviewed case (a patient's film)


async def _data_uri(storage_key: str | None, filename: str | None = None, outlines: list | None = None) -> str | None:
    from raiox.review import images

    if not storage_key:
        return None
    try:
        data, media_type = await images.load(storage_key, filename, max_side=1400, fmt="JPEG", outlines=outlines)
    except RaioxError:
        return None
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


async def _reference_keys(session: AsyncSession, images: list, system_ids: list[str]) -> dict[str, str | None]:
    """For each system, the catalog reference that matched the case's IMAGES best, else the system's first one.
    Never a reference taken from a case ("add to catalog"): that is another patient's radiograph."""
    from raiox.models import ReferenceImage
    from raiox.review import repository as review_repo

    results = [r for _f, rs in await review_repo.fixtures_with_results(session, [i.id for i in images]) for r in rs
               if r.reference_image_id]
    def catalog_key(refs) -> str | None:
        return next((r.storage_key for r in refs if r is not None and r.source != CASE_SOURCE), None)

    keys: dict[str, str | None] = {}
    for system_id in system_ids:
        matches = sorted(((r.score, r.reference_image_id) for r in results if r.system_id == system_id), reverse=True)
        keys[system_id] = (catalog_key([await session.get(ReferenceImage, ref_id) for _score, ref_id in matches])
                           or catalog_key(await review_repo.references_of(session, system_id)))
    return keys


async def report_context(session: AsyncSession, case_id: uuid.UUID, key: str | None = None, *,
                         check_key: bool = False) -> dict:
    """What the report page shows; CHECK_KEY: the link's KEY must be the case's current one (else LinkRevoked)."""
    from raiox.review import repository as review_repo

    case = await cases.get_or_404(session, case_id)
    if check_key and key != case.report_key:
        raise LinkRevoked("this report link was revoked", case.id)
    if case.purged_at is not None:
        raise ReportPurged("this case's films and data were removed (data retention)")
    system = await repository.get_system(session, case.approved_system_id)
    if case.status not in REPORTABLE or system is None:
        raise NotFound("no approved result for this case")
    images = await review_repo.case_images(session, case.id)
    others = [o for o in await repository.systems_in_order(session, list(case.other_system_ids or [])) if o]
    names = {s.id: s.name for s in (system, *others)}
    places = await repository.implant_places(session, list(case.implant_systems or {}))
    xrays = []
    for image in images:  # the films the analysis could read (a refused one may be a
        if not image.storage_key or image.status != ImageStatus.processed:  # bomb): never decoded here
            continue
        mapped = sorted((n, box, names.get(case.implant_systems[f], "")) for f, (film, n, box) in places.items()
                        if film == image.position + 1)
        uri = await _data_uri(image.storage_key, image.filename, [(box, str(n)) for n, box, _name in mapped])
        if uri:
            xrays.append((image.position + 1, uri, [(n, name) for n, _box, name in mapped]))
    keys = await _reference_keys(session, images, [system.id, *(o.id for o in others)])
    return {"case": case, "system": system, "xrays": xrays,
            "reference": await _data_uri(keys[system.id]),
            "others": [(o, await _data_uri(keys[o.id])) for o in others]}


HEADERS = {"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer",
           # the page is self-contained (inline style, data: images): nothing else may load, frame it or be sniffed
           "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                      "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


# GET and HEAD: mail scanners and link previews ask with HEAD first, and got a JSON 405
@router.api_route("/reports/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
async def report(token: str, session: AsyncSession = DbSession) -> HTMLResponse:
    """The report, or (the dentist reads it) a pt-BR page saying why there is none: never a JSON error."""
    try:
        case_id, key = case_from_token(token)
        context = await report_context(session, case_id, key, check_key=True)
    except (NotFound, LinkExpired, LinkRevoked) as exc:
        # the protocol, to quote when asking again, on an expired link only (a revoked one is likely in wrong hands)
        protocol = await _protocol(session, exc.case_id if isinstance(exc, LinkExpired) else None)
        return HTMLResponse(render("report_unavailable.html", protocol=protocol, **_unavailable(exc)),
                            status_code=exc.status_code, headers=HEADERS)
    return HTMLResponse(render("report.html", **context), headers=HEADERS)


@router.api_route("/reports", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
@router.api_route("/reports/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
@router.api_route("/reports/{token}/{rest:path}", methods=["GET", "HEAD"], response_class=HTMLResponse,
                  include_in_schema=False)
async def report_mistyped(token: str = "", rest: str = "") -> HTMLResponse:
    """A report link cut short or with something after it (pasted twice, a stray slash): the dentist's pt-BR page,
    not JSON."""
    return HTMLResponse(render("report_unavailable.html", protocol=None, **_unavailable(InvalidLink("invalid"))),
                        status_code=404, headers=HEADERS)


async def _protocol(session: AsyncSession, case_id: uuid.UUID | None) -> str | None:
    """The case's protocol (Jotform submission id) for an expired link, which the dentist quotes to ask again."""
    if case_id is None:
        return None
    try:
        return (await cases.get_or_404(session, case_id)).jotform_submission_id
    except NotFound:
        return None


def _unavailable(exc: RaioxError) -> dict:
    if isinstance(exc, LinkExpired):
        days = get_settings().report_link_days
        return {"heading": "Este link de relatório expirou",
                "explanation": f"Por segurança, os links de relatório valem {days} {'dia' if days == 1 else 'dias'} "
                               "a partir do envio do resultado."}
    if isinstance(exc, ReportPurged):
        return {"heading": "Os dados deste caso foram removidos", "gone": True,
                "explanation": "As radiografias e os dados deste caso foram apagados conforme a política de proteção "
                               "de dados da Raiox AI; o relatório não pode mais ser exibido."}
    if isinstance(exc, LinkRevoked):
        return {"heading": "Este link de relatório foi desativado",
                "explanation": "A equipe Raiox AI desativou este link por segurança."}
    if isinstance(exc, InvalidLink):
        return {"heading": "Link de relatório inválido",
                "explanation": "O endereço não corresponde a nenhum relatório. Confira se ele foi copiado por inteiro."}
    return {"heading": "Relatório indisponível",
            "explanation": "O resultado deste caso não está disponível no momento."}
