"""The admin panel: a FastAPI sub-app mounted at /admin by `raiox serve`, or served alone (`raiox admin`).

Server-rendered Jinja2 + HTMX (vendored static/htmx.min.js), pt-BR through the i18n catalog.
"""

import contextlib
import re
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from raiox.cases.service import STATUS_LABELS_PT
from raiox.delivery.templates import when
from raiox.kit.errors import BadRequest, RaioxError, database_errors, database_unavailable, unstorable
from raiox.kit.logging import get_logger
from raiox.review import i18n
from raiox.review.auth import CSRF_FIELD, load_session
from raiox.review.differences import spec_difference
from raiox.review.reasons import actor_text, reason_parts
from raiox.review.schemas import MESSAGE_MAX, REPORT_MESSAGE_MAX

log = get_logger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class LoginRequired(Exception):
    """No valid panel session: pages redirect to the login form."""


def base_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def status_label(status: str) -> str:
    text = i18n.gettext(f"status.{status}")
    return STATUS_LABELS_PT.get(status, status) if text == f"status.{status}" else text


def connection_read(probs: list | None) -> str | None:
    """The connection reader's likeliest class of a fixture with its probability ("conexão lida: cônica 11,5°
    (72%)"), None when nothing was read."""
    from raiox.vision.connection import CLASSES

    if not probs or len(probs) != len(CLASSES):
        return None
    best = max(range(len(probs)), key=lambda i: probs[i])
    return i18n.gettext("case.connection_read", kind=i18n.gettext(f"connection.{CLASSES[best]}"),
                        p=f"{100 * probs[best]:.0f}")


FEATURE_SURE = 0.8  # a design feature is shown to the reviewer when the reader gives its likeliest value this much


def features_read(read: dict | None) -> str | None:
    """The design-feature reader's sure reads of a fixture, apex to collar ("lido no corpo: ápice cônico
    (95%), rosca quadrada (91%)"), None when nothing was read or nothing is sure."""
    from raiox.vision.attributes import HEADS

    parts = []
    for name in [n for n in HEADS if n in (read or {})]:  # the heads' order (JSONB keeps its own key order)
        probs = read[name]
        if len(probs) != len(HEADS[name][0]):
            continue
        best = max(range(len(probs)), key=probs.__getitem__)
        if probs[best] >= FEATURE_SURE:
            what = i18n.gettext(f"feature.{name}.{str(HEADS[name][0][best]).lower()}")
            parts.append(i18n.gettext("case.feature", what=what, p=f"{100 * probs[best]:.0f}"))
    return i18n.gettext("case.features_read", items=", ".join(parts)) if parts else None


def length_read(turns: float | None, system) -> str | None:
    """The length a candidate system's pitch gives the fixture's thread count ("pela rosca ≈ 11,5 mm (a linha tem
    11,5 mm)"; ``raiox.vision.threads``), with the line's nearest length when one is within 10 %, else the line's
    range ("pela rosca ≈ 23,3 mm (fora da linha: 8,0–10,0 mm)"); None without a count or a pitch."""
    from raiox.vision.threads import OFFSET_MM, line_of

    line = line_of(system.spec, system.attributes) if turns and system is not None else None
    if line is None:
        return None
    length = turns * line.pitch_mm - OFFSET_MM
    nearest = min(line.lengths_mm, key=lambda value: abs(value - length))
    mm = _decimal(length)
    if abs(nearest - length) <= 0.1 * nearest:
        return i18n.gettext("case.length_read_line", mm=mm, line=_decimal(nearest))
    lo, hi = min(line.lengths_mm), max(line.lengths_mm)
    return i18n.gettext("case.length_read", mm=mm, range=_decimal(lo) if lo == hi else f"{_decimal(lo)}–{_decimal(hi)}")


def _decimal(value: float) -> str:
    """One decimal in the reader's language (11,5 in pt-BR, 11.5 in English)."""
    return i18n.decimal(f"{value:.1f}")


def percent(score: float) -> str:
    """A similarity as the operator reads it: 0-100 %, never "-31%" or "-0%" (cosine goes below zero; that is no
    likeness at all)."""
    return f"{max(0, round(float(score) * 100))}%"


def system_label(system) -> str:
    """A system as the panel and the audit log name it, "Grand Morse (Neodent)" (`review.service.system_label`,
    imported when first used: importing the service at start-up would load the job queue with the panel)."""
    from raiox.review.service import system_label as label

    return label(system)


templates.env.filters["when"] = when
templates.env.filters["percent"] = percent
templates.env.filters["term"] = i18n.term
templates.env.filters["system_label"] = system_label
templates.env.globals["connection_read"] = connection_read
templates.env.globals["features_read"] = features_read
templates.env.globals["length_read"] = length_read
templates.env.globals["spec_difference"] = spec_difference
templates.env.globals["message_max"] = MESSAGE_MAX  # the longest message or note the service accepts
templates.env.globals["report_message_max"] = REPORT_MESSAGE_MAX  # the approval's message: on the one-page report


def render(request: Request, name: str, context: dict | None = None, status_code: int = 200,
           headers: dict | None = None) -> HTMLResponse:
    session = load_session(request)
    values = {
        "request": request, "base": base_path(request), "t": i18n.translator(), "status_label": status_label,
        "reason_parts": reason_parts, "actor": actor_text,
        "user": getattr(request.state, "user", None), "csrf_token": session.get("csrf", ""), "csrf_field": CSRF_FIELD,
        "lang": i18n.gettext("meta.lang"), "done": done_message(request),
    } | (context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code, headers=headers)


DONE = "feito"  # the query parameter naming what was just done: the page it leads to says so (`done.<key>`)


def redirect(request: Request, path: str, done: str | None = None) -> Response:
    """303 to PATH under the panel; for HTMX requests an HX-Redirect (the browser follows it). DONE, a key of the
    `done.*` messages, has the page say what was just done (panel.js then drops it from the address)."""
    url = base_path(request) + path
    if done:
        path_part, hash_mark, fragment = url.partition("#")
        url = f"{path_part}{'&' if '?' in path_part else '?'}{DONE}={done}{hash_mark}{fragment}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def done_message(request: Request) -> str | None:
    """The success message the address asks for (`?feito=KEY`), when KEY names one (never text from the address)."""
    key = request.query_params.get(DONE, "")
    message_id = f"done.{key}"
    return i18n.gettext(message_id) if key.isidentifier() and i18n.gettext(message_id) != message_id else None


async def _login_required(request: Request, _exc: LoginRequired) -> Response:
    target = request.url.path
    return redirect(request, f"/login?next={target}") if request.method == "GET" else login_again(request)


def login_again(request: Request) -> Response:
    """A form sent without a valid session (it expired, or the operator signed out in another tab): the login page,
    which says so (what was typed was not sent), and then back to the page the form was on."""
    from urllib.parse import quote, urlsplit

    referer = _same_site_referer(request)
    back = urlsplit(referer) if referer else None
    target = back.path + (f"?{back.query}" if back.query else "") if back else ""
    return redirect(request, "/login?expirou=1" + (f"&next={quote(target, safe='/')}" if target else ""))


MAX_PAGE = 1_000_000  # page numbers the panel accepts: far past any list, keeps the row offset a PostgreSQL bigint
ERROR_TEXT = {400: "error.bad_request", 404: "error.not_found", 405: "error.method", 409: "error.conflict",
              422: "error.invalid", 429: "error.too_many", 503: "error.unavailable"}
# Starlette's form parser's messages (python-multipart), in the operator's words
FORM_ERRORS = ((re.compile(r"(Field|Part) exceeded maximum size of (?P<kb>\d+)KB\."), "error.field_too_large"),
               (re.compile(r"Too many (fields|files)\. .*"), "error.form_too_many"),
               (re.compile(r"There was an error parsing the body|Missing boundary in multipart\."
                           r"|Invalid multipart data\.|The Content-Disposition header field .*"),
                "error.form_unreadable"))


def for_operator(error: RaioxError) -> RaioxError:
    """ERROR, whose message is already the operator's explanation (pt-BR, from the catalog): the error page
    shows it as its heading instead of the generic text for the HTTP status."""
    error.for_operator = True
    return error


def _field(name: str) -> str:
    label = i18n.gettext(f"field.{name}")
    return name if label == f"field.{name}" else label


def invalid_fields(errors: list[dict]) -> RaioxError:
    """A 400 naming, in pt-BR, each request field FastAPI found missing or malformed."""
    items = []
    for error in errors:
        name = next((part for part in reversed(error.get("loc", ())) if isinstance(part, str)), "?")  # not list indexes
        which = "error.field_missing" if error.get("type") == "missing" else "error.field_invalid"
        item = i18n.gettext(which, field=_field(name))
        if item not in items:
            items.append(item)
    return for_operator(BadRequest(i18n.gettext("error.fields", items="; ".join(items))))


def _error_page(request: Request, status_code: int, summary: str, headers: dict | None = None) -> Response:
    if request.headers.get("hx-request"):
        html = templates.env.get_template("_error.html").render(summary=summary)
        return HTMLResponse(html, status_code=status_code,
                            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"} | (headers or {}))
    return render(request, "error.html", {"error": SimpleNamespace(status_code=status_code), "summary": summary,
                                          "previous": _same_site_referer(request),
                                          "done": None},
                  status_code=status_code, headers=headers)


def _same_site_referer(request: Request) -> str | None:
    """The page the operator came from, when it is one of the panel's (never a link back to another site)."""
    from urllib.parse import urlsplit

    referer = urlsplit(request.headers.get("referer", ""))
    here = urlsplit(str(request.base_url))
    if referer.scheme in ("http", "https") and referer.netloc == here.netloc and \
            referer.path.startswith(base_path(request) + "/"):
        return referer.geturl()
    return None


async def _error(request: Request, exc: RaioxError) -> Response:
    """The error in pt-BR: the operator's own explanation (`for_operator`), else the service's refusal in their words
    (`operator_errors`), else what its HTTP status means. The service's English text is never shown (it is the API's
    contract, not the operator's language): it goes to the log."""
    from raiox.review.operator_errors import operator_text

    if getattr(exc, "for_operator", False):
        summary = exc.message
    elif (summary := operator_text(exc.message)) is None:
        log.info("panel.error_untranslated", status=exc.status_code, code=exc.code, error=exc.message)
        summary = i18n.gettext(ERROR_TEXT.get(exc.status_code, "error.http"), status=exc.status_code)
    return _error_page(request, exc.status_code, summary)


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A path, query or form value FastAPI cannot accept (a malformed id, a page out of range, a missing field):
    the panel's 400 page naming the field, never FastAPI's English JSON."""
    return await _error(request, invalid_fields(list(exc.errors())))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own errors under the panel (unknown page, wrong method, unreadable or oversized form): the
    panel's page, in pt-BR (the form parser's messages in the operator's words, any other text logged)."""
    text = str(exc.detail or "")
    for pattern, message_id in FORM_ERRORS:
        if match := pattern.fullmatch(text):
            text = i18n.gettext(message_id, **match.groupdict())
            return _error_page(request, exc.status_code, text, exc.headers)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = ""
    if text not in ("", phrase):  # English (Starlette's, or an HTTPException's): for the log, not the operator
        log.info("panel.error_untranslated", status=exc.status_code, error=text)
    summary = i18n.gettext(ERROR_TEXT.get(exc.status_code, "error.http"), status=exc.status_code)
    return _error_page(request, exc.status_code, summary, exc.headers)


async def _unstorable(request: Request, exc: DataError) -> Response:
    """A value the database refuses (kit.errors.unstorable): the panel's 422 page, not a 500."""
    return await _error(request, unstorable(exc))


async def _database_down(request: Request, exc: Exception) -> Response:
    """A database outage (kit.errors.database_errors): the panel's 503 page (rendered without the database)."""
    database_unavailable(exc)  # logs it
    try:
        return _error_page(request, 503, i18n.gettext("error.unavailable"), {"Retry-After": "30"})
    except Exception:
        return HTMLResponse(f"<p>{i18n.gettext('error.unavailable')}</p>", status_code=503)


async def _crashed(request: Request, exc: Exception) -> Response:
    """A bug or an outage: the panel's pt-BR page (the traceback goes to the log), not a bare English text."""
    try:
        return _error_page(request, 500, i18n.gettext("error.internal"))
    except Exception:  # rendering needs what just failed (the database...): the plainest page
        return HTMLResponse(f"<p>{i18n.gettext('error.internal')}</p>", status_code=500)


async def _signed_in_first(request: Request, call_next):
    """A POST from nobody signed in (no valid session cookie; the login form aside) is sent to the login page before
    its body is read: an anonymous client cannot make the server take in a large upload only to refuse it. The
    session itself (user, password, logout) is still checked by each route."""
    login = request.url.path == f"{base_path(request)}/login"  # the login form only, not a path ending like it
    if request.method == "POST" and not login and "uid" not in load_session(request):
        return login_again(request)
    return await call_next(request)


async def _security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.url.path.startswith(base_path(request) + "/static"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_panel() -> FastAPI:
    from raiox.review import views_audit, views_auth, views_cases, views_catalog, views_media

    panel = FastAPI(title="Raiox AI admin", docs_url=None, redoc_url=None, openapi_url=None)
    panel.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    panel.add_exception_handler(LoginRequired, _login_required)
    panel.add_exception_handler(RaioxError, _error)
    panel.add_exception_handler(RequestValidationError, _invalid_request)
    panel.add_exception_handler(StarletteHTTPException, _http_error)
    panel.add_exception_handler(DataError, _unstorable)
    for outage in database_errors():
        panel.add_exception_handler(outage, _database_down)
    panel.add_exception_handler(Exception, _crashed)
    panel.middleware("http")(_signed_in_first)
    panel.middleware("http")(_security_headers)
    for module in (views_auth, views_cases, views_catalog, views_media, views_audit):
        panel.include_router(module.router)
    return panel


@contextlib.asynccontextmanager
async def _released(_app: FastAPI) -> AsyncIterator[None]:
    """`raiox admin` on the embedded database gives its handle back when it stops, as `raiox serve` does: uvicorn
    ends a SIGTERM by raising it again, which kills the process before pgserver's exit hook would. (The login's dummy
    hash is not made here as `raiox serve`'s start-up makes it: a start-up that long let a SIGTERM during it end
    `raiox admin` by SIGINT, exit -2, about 1 run in 3 in tests/kit/test_serve.py; the admin host's first refusal
    makes it.)"""
    try:
        yield
    finally:
        from raiox.kit import db

        await db.release_embedded()


def create_admin_app() -> FastAPI:
    """`raiox admin`: the panel on its own host (no webhook, no worker), with the review API, report
    links and health probes; decisions enqueue delivery jobs that the API hosts' workers run."""
    from raiox import __version__
    from raiox.app import add_error_handlers, openapi_document
    from raiox.kit.apidocs import install_api_docs
    from raiox.delivery.routes import router as delivery_router
    from raiox.kit.health import router as health_router
    from raiox.kit.logging import configure_logging
    from raiox.kit.settings import get_settings
    from raiox.review.routes import router as review_router

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = FastAPI(title="Raiox AI admin", version=__version__, docs_url=None, redoc_url=None, lifespan=_released)
    app.openapi = lambda: openapi_document(app)  # the API's one error body, as on the API hosts
    install_api_docs(app)  # Swagger UI from the app itself (no CDN), like the API hosts'
    add_error_handlers(app)
    for router in (health_router, review_router, delivery_router):
        app.include_router(router)
    app.mount("/admin", create_panel())
    from raiox.kit.headers import HeadAsGet, NoStoreJSON
    from raiox.kit.requestid import RequestId

    from raiox.kit.bodylimit import DeclaredLengthFirst, route_limits

    app.add_middleware(NoStoreJSON)  # the review API's answers name the case and its reviewer, as on the API hosts
    app.add_middleware(HeadAsGet)
    app.add_middleware(DeclaredLengthFirst, limits=route_limits(review_router))  # a JSON body over its limit, unread
    app.add_middleware(RequestId)

    @app.get("/", include_in_schema=False)
    async def _home() -> RedirectResponse:
        return RedirectResponse("/admin/")

    return app
