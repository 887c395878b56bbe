"""Catalog pages (admins only): list/search systems, create/edit one, upload reference images
(embedded on upload with the current model, stored like catalog references), remove one."""

import uuid
from urllib.parse import urlencode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog import repository as catalog_repo
from raiox.catalog.sources import slug
from raiox.kit.deps import DbSession
from raiox.kit.errors import Conflict, NotFound, TooLarge, Unprocessable
from raiox.models import ImplantSystem, User
from raiox.review import repository, service
from raiox.review.deps import actor, admin_user, csrf_protect
from raiox.review.i18n import gettext
from raiox.review.panel import MAX_PAGE, for_operator, invalid_fields, redirect, render, templates

router = APIRouter(prefix="/catalog")
PAGE = 50
MAX_UPLOAD = 30 * 1024 * 1024  # bytes per reference image
MAX_FILES = 20  # reference images per upload (each is read into memory before the importer decodes it)
# The images of one upload together: all of them are held in memory while the importer decodes them, and the admin
# host is a 2 GB droplet (MAX_FILES * MAX_UPLOAD, 600 MiB, plus their decoded pixels would not fit beside the app).
MAX_UPLOAD_TOTAL = 120 * 1024 * 1024
# The largest body of an upload this page accepts: MAX_UPLOAD_TOTAL bytes of images, and 1 MiB for the multipart
# framing (each part's boundary and headers, its file name included) and the form's csrf_token. nginx's cap for the
# page (deploy/roles/nginx/defaults/main.yml: nginx_upload_max_body_size) is this number, so that nginx never cuts
# an upload the page would take (tests/ops/test_nginx.py); a larger declared body is refused here, before it is read.
MAX_UPLOAD_BODY = MAX_UPLOAD_TOTAL + 2**20


def upload_limits() -> dict[str, int]:
    """The upload's limits as the page states them beside the file input (MB), read when the page is drawn."""
    return {"max": MAX_FILES, "per": MAX_UPLOAD // 2**20, "total": MAX_UPLOAD_TOTAL // 2**20}


templates.env.globals["upload_limits"] = upload_limits
RESERVED_IDS = {"new"}  # the catalog's own pages: a system with such an id could never be opened


@router.get("")
async def catalog(request: Request, q: str = "", page: int = Query(1, ge=1, le=MAX_PAGE),
                  user: User = Depends(admin_user), session: AsyncSession = DbSession) -> Response:
    systems = await repository.search_systems(session, q, limit=PAGE, offset=(page - 1) * PAGE)
    counts = await repository.reference_counts(session, [s.id for s in systems])
    pages = max(1, -(-await repository.count_systems(session, q) // PAGE))
    return render(request, "catalog.html", {"systems": systems, "page": page,
                                            "pages": pages, "q": q, "counts": counts,
                                            "keep": urlencode({"q": q}) if q else ""})


@router.get("/new")
async def new_system(request: Request, user: User = Depends(admin_user)) -> Response:
    return render(request, "system.html", {"system": None, "references": []})


async def _fill(session: AsyncSession, system: ImplantSystem, manufacturer: str, name: str, connection: str,
                body_shape: str, active: bool) -> None:
    """The form's values into SYSTEM (names trimmed, otherwise as typed); refused (pt-BR, on the form) without a
    manufacturer or a name, or with those of another system, letter case, accents and spaces aside (the catalog's
    unique index: "neodent grand  morse" is Neodent Grand Morse). A system whose names are left as they were is saved
    even beside a look-alike from before that index (docs/operations.md, "Look-alike catalog systems")."""
    if not manufacturer.strip() or not name.strip():
        raise for_operator(Unprocessable(gettext("catalog.required")))
    unchanged = (system.manufacturer, system.name) == (manufacturer.strip(), name.strip())
    if not unchanged and (other := await catalog_repo.system_named(session, manufacturer.strip(), name.strip(),
                                                                   other_than=system.id)):
        raise _name_taken(other)
    system.manufacturer, system.name = manufacturer.strip(), name.strip()
    system.connection, system.body_shape = connection.strip() or None, body_shape.strip() or None
    system.active = active


def _name_taken(other: ImplantSystem) -> Exception:
    return for_operator(Conflict(gettext("catalog.name_taken", name=f"{other.manufacturer} {other.name}",
                                         id=other.id)))


@asynccontextmanager
async def _names_guarded(session: AsyncSession, system_id: str, manufacturer: str, name: str) -> AsyncIterator[None]:
    """Fill and save a system within: a save racing another with the same names (the check in `_fill` passed for
    both), or a create racing another of the same id (the create's check passed for both), is the same pt-BR 409 as
    the check's, not a database error (500): the database's unique index and primary key are the final guard. A
    savepoint, opened before anything changes (opening one flushes), keeps the session usable."""
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except IntegrityError as exc:
        if catalog_repo.id_clash(exc):
            raise for_operator(Conflict(gettext("catalog.exists", id=system_id))) from exc
        if not catalog_repo.name_clash(exc):
            raise
        with session.no_autoflush:
            other = await catalog_repo.system_named(session, manufacturer.strip(), name.strip(), other_than=system_id)
        raise (_name_taken(other) if other else for_operator(Conflict(gettext("catalog.exists", id=system_id)))) \
            from exc


@router.post("/new", dependencies=[Depends(csrf_protect)])
async def create_system(request: Request, manufacturer: str = Form(""), name: str = Form(""), system_id: str = Form(""),
                        connection: str = Form(""), body_shape: str = Form(""), active: bool = Form(False),
                        user: User = Depends(admin_user), session: AsyncSession = DbSession) -> Response:
    if not manufacturer.strip() or not name.strip():
        raise for_operator(Unprocessable(gettext("catalog.required")))
    new_id = slug(system_id or f"{manufacturer}-{name}")
    if not new_id or new_id in RESERVED_IDS:
        raise for_operator(Unprocessable(gettext("catalog.bad_id", text=system_id or f"{manufacturer} {name}")))
    if await session.get(ImplantSystem, new_id):
        raise for_operator(Conflict(gettext("catalog.exists", id=new_id)))
    system = ImplantSystem(id=new_id, attributes={})
    async with _names_guarded(session, new_id, manufacturer, name):
        await _fill(session, system, manufacturer, name, connection, body_shape, active)
        session.add(system)
    await service.audit(session, actor(user), "catalog.create", target=new_id,
                        name=f"{system.manufacturer} {system.name}", fields=_fields(system))
    return redirect(request, f"/catalog/{new_id}", done="system_created")


async def _system(session: AsyncSession, system_id: str) -> ImplantSystem:
    system = await session.get(ImplantSystem, system_id)
    if system is None:
        raise for_operator(NotFound(gettext("catalog.not_found", id=system_id)))
    return system


@router.get("/{system_id}")
async def edit_system(request: Request, system_id: str, user: User = Depends(admin_user),
                      session: AsyncSession = DbSession) -> Response:
    system = await _system(session, system_id)
    references = await repository.references_of(session, system_id)
    return render(request, "system.html", {"system": system, "references": references,
                                           "audit": await repository.audit_for_system(session, system_id)})


@router.post("/{system_id}", dependencies=[Depends(csrf_protect)])
async def update_system(request: Request, system_id: str, manufacturer: str = Form(""), name: str = Form(""),
                        connection: str = Form(""), body_shape: str = Form(""), active: bool = Form(False),
                        user: User = Depends(admin_user), session: AsyncSession = DbSession) -> Response:
    system = await _system(session, system_id)
    before = _fields(system)
    async with _names_guarded(session, system_id, manufacturer, name):
        await _fill(session, system, manufacturer, name, connection, body_shape, active)
    after = _fields(system)
    changed = {field: [before[field], after[field]] for field in after if before[field] != after[field]}
    await service.audit(session, actor(user), "catalog.update", target=system_id, active=active, changed=changed)
    return redirect(request, f"/catalog/{system_id}", done="system_saved")


def _fields(system: ImplantSystem) -> dict:
    """What the system form edits, as the audit records it (a change: [before, after])."""
    return {"manufacturer": system.manufacturer, "name": system.name, "connection": system.connection,
            "body_shape": system.body_shape, "active": system.active}


@router.post("/{system_id}/references/{reference_id}/delete", dependencies=[Depends(csrf_protect)])
async def remove_reference(request: Request, system_id: str, reference_id: uuid.UUID,
                           user: User = Depends(admin_user),
                           session: AsyncSession = DbSession) -> Response:
    """A reference image that should not be in the catalog (a wrong system, a bad film): its row and vectors go, and
    its stored object unless a case or another reference still uses it (deleted before the commit: a storage outage
    leaves the reference in place, to try again)."""
    await _system(session, system_id)
    try:
        await service.remove_reference(session, system_id, reference_id, actor=actor(user))
    except NotFound as exc:
        raise for_operator(NotFound(gettext("catalog.reference_not_found"))) from exc
    return redirect(request, f"/catalog/{system_id}", done="reference_removed")


async def _uploaded_files(request: Request) -> list:
    """The form's `files`, read only now: after the role check (a reviewer's upload is refused before its body is
    taken in; FastAPI reads a route's declared form before any dependency)."""
    from starlette.datastructures import UploadFile

    form = await request.form()
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if not files:  # no field at all, or an empty file input
        raise invalid_fields([{"loc": ("body", "files"), "type": "value_error" if "files" in form else "missing"}])
    return files


def _within_upload_limit(request: Request) -> None:
    """A body declared over MAX_UPLOAD_BODY is refused (413, the page's pt-BR words) before it is read: a dependency
    between the role check and the CSRF check, which reads a plain form's body for its token. In production nginx,
    whose cap for the page is the same number, refuses it first."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BODY:
        raise _too_large(int(declared))


def _too_large(size: int) -> Exception:
    return for_operator(TooLarge(gettext("catalog.upload_too_large", mb=-(-size // 2**20), max=MAX_FILES,
                                         per=MAX_UPLOAD // 2**20, total=MAX_UPLOAD_TOTAL // 2**20)))


@router.post("/{system_id}/images",
             dependencies=[Depends(admin_user), Depends(_within_upload_limit), Depends(csrf_protect)])
async def upload_images(request: Request, system_id: str, user: User = Depends(admin_user),
                        session: AsyncSession = DbSession) -> Response:
    """The files are known by their place in the upload and their size (`catalog_upload.label`) in what is kept (the
    references' origin, the audit): a film's file name often is its patient's. Only this page names them."""
    from raiox.review.catalog_upload import add_references, label, named

    system = await _system(session, system_id)
    files = await _uploaded_files(request)
    if len(files) > MAX_FILES:
        raise for_operator(Unprocessable(gettext("catalog.too_many_files", n=len(files), max=MAX_FILES)))
    if (total := sum(upload.size or 0 for upload in files)) > MAX_UPLOAD_TOTAL:  # a body sent without a length
        raise _too_large(total)  # (chunked) is measured only now, spooled to disk, before any image is held in memory
    uploads, empty, names = [], [], {}
    for index, upload in enumerate(files, 1):
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise for_operator(Unprocessable(gettext("catalog.too_large", name=upload.filename or "?",
                                                     mb=MAX_UPLOAD // 2**20)))
        known = label(index, len(data))
        names[known] = gettext("catalog.upload_file", n=index, name=upload.filename)  # "arquivo 2 (rx.png)"
        if data:
            uploads.append((known, upload.filename or "", data))
        else:  # reported below, like the importer's own skips
            empty.append(known)
    report = await add_references(session, system, uploads)
    for known in empty:
        report.skip(known, gettext("catalog.empty_file"))
    await service.audit(session, actor(user), "catalog.upload", target=system_id, added=report.added,
                        images=report.stored, skipped=[f"{s.origin}: {s.reason}" for s in report.skipped])
    return render(request, "system.html", {"system": system, "report": named(report, names),
                                           "references": await repository.references_of(session, system_id),
                                           "audit": await repository.audit_for_system(session, system_id)})
