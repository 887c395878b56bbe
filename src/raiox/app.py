"""The FastAPI application: API routes, the Jotform webhook, the admin panel (mounted sub-app)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from raiox import __version__
from raiox.kit import jobs
from raiox.kit.bodylimit import JSON_MAX_BODY, too_large
from raiox.kit.errors import RaioxError, database_errors, database_unavailable, unstorable
from raiox.kit.health import router as health_router
from raiox.kit.logging import configure_logging, get_logger, register_secret
from raiox.kit.settings import get_settings

log = get_logger(__name__)


RETRY_AFTER_S = "30"  # an outage (503): when to try again


async def _error_handler(_request: Request, exc: RaioxError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None  # RFC 9110: a 401 names its scheme
    if exc.status_code == 503:
        headers = {"Retry-After": str(exc.retry_after or RETRY_AFTER_S)}
    elif exc.retry_after is not None:  # a 429 that knows when the action is allowed again (RFC 6585, RFC 9110)
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"error": exc.code, "detail": exc.message}, status_code=exc.status_code, headers=headers)


class FieldProblem(BaseModel):
    """One field's problem in an invalid request (422 `invalid_request`)."""

    field: str = Field(description="The field, dotted for a nested one (`implants.0.system_id`); `body` for the body "
                                   "as a whole (malformed JSON, not a JSON object, none sent)", examples=["message"])
    message: str = Field(description="What is wrong with it", examples=["String should have at least 1 character"])


class ErrorBody(BaseModel):
    """Every error of the API: a stable code, a readable reason, and (invalid requests) each field's problem."""

    error: str = Field(description="Stable machine-readable code (invalid_request, unauthorized, forbidden, not_found, "
                                   "conflict, too_large, too_many_requests, unavailable, ...)",
                       examples=["invalid_request"])
    detail: str = Field(description="The reason, for a person", examples=["message: String should have at least 1 "
                                                                          "character"])
    fields: list[FieldProblem] | None = Field(default=None, description="Each field's problem (422 invalid_request "
                                                                        "only)")


def _error_schemas() -> dict[str, dict]:
    """ErrorBody's schema and the models it names, as `components.schemas` entries."""
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "ErrorBody": schema}


def _own_body(response: dict) -> bool:
    """A 4xx/5xx the route documents with a model of its own (`/readyz`'s 503 answers its checks, not an error)."""
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    return bool(ref) and not ref.endswith("/HTTPValidationError")


# the headers the app sets on its answers (`components.headers`), each named on the answers that carry it
RESPONSE_HEADERS = {
    "X-Request-ID": {"description": "The request's id (the client's `X-Request-ID` when it is at most 128 characters "
                                    "of [A-Za-z0-9._-], else a new one), on the server's log lines too",
                     "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before sending the same request again",
                    "schema": {"type": "integer", "minimum": 1}},
    "WWW-Authenticate": {"description": "The scheme the request needs: `Bearer`", "schema": {"type": "string"}},
}
OUTAGE = {"description": "Unavailable for now (the database, object storage, or a setting the route needs): nothing "
                         "was recorded; send the same request again after `Retry-After` seconds"}
JSON_TOO_LARGE = {"description": f"The JSON body is over {JSON_MAX_BODY} bytes (1 MiB; declared or as it streams): "
                                  "refused before it is read or parsed (the token is not checked), nothing recorded"}
NO_DATABASE = {"/healthz"}  # the operations that answer without the database (every other one may meet an outage)


CODE_HEADERS = {"401": ["WWW-Authenticate"], "429": ["Retry-After"], "503": ["Retry-After"]}


def _headers_of(code: str) -> list[str]:
    return ["X-Request-ID", *CODE_HEADERS.get(code, [])]


def openapi_document(app: FastAPI) -> dict:
    """FastAPI's document, with the API's real error body where it documents its own validation error shape, and on
    every error answer that names no body of its own; every operation that reads the database declares the outage's
    503, and every answer the headers the app sets on it (`X-Request-ID`; `Retry-After` on 429 and 503,
    `WWW-Authenticate` on 401)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(_error_schemas())
        components["headers"] = RESPONSE_HEADERS
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if path not in NO_DATABASE:
                    responses.setdefault("503", dict(OUTAGE))
                if "application/json" in operation.get("requestBody", {}).get("content", {}):
                    responses.setdefault("413", dict(JSON_TOO_LARGE))
                for code, response in responses.items():
                    if code[0] in "45" and not _own_body(response):
                        response["content"] = {"application/json": {"schema": {
                            "$ref": "#/components/schemas/ErrorBody"}}}
                    headers = response.setdefault("headers", {})
                    for name in _headers_of(code):
                        headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
        app.openapi_schema = schema
    return app.openapi_schema


async def _data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    return await _error_handler(request, unstorable(exc))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return await _error_handler(request, database_unavailable(exc))


HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "too_large"}


# FastAPI's words when a file parameter gets a plain form value: Starlette reads a multipart part without a filename
# (`filename=""`) as text, not as a file
_NOT_A_FILE = "Expected UploadFile, received:"


# pydantic's error types for a body that is not a JSON object (a list, a string; bytes FastAPI did not parse)
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _field_problem(error: dict, content_type: str = "") -> dict[str, str]:
    """One field's problem, in words for the client (never FastAPI's internal type names). The body as a whole:
    malformed JSON (FastAPI names the character's offset as if it were a field), a body sent without
    `Content-Type: application/json` (FastAPI then does not parse it), JSON that is not an object, no body."""
    loc, kind = tuple(error.get("loc", ())), error.get("type")
    field = ".".join(str(p) for p in loc[1:]) or "body"
    message = error.get("msg", "")
    if _NOT_A_FILE in message:
        message = (f"the part named {field!r} carries no file (a part without a filename is read as text): "
                   "send it as a file, with its filename")
    elif kind == "json_invalid":
        field = "body"
        where = f" at offset {loc[1]}" if len(loc) > 1 else ""
        message = f"malformed JSON{where}: {(error.get('ctx') or {}).get('error') or message}"
    elif loc == ("body",) and kind in _NOT_AN_OBJECT:
        message = ("the body must be a JSON object" if _is_json(content_type) else
                   "the body must be a JSON object sent with Content-Type: application/json (got "
                   f"{content_type.split(';', 1)[0].strip() or 'no Content-Type'})")
    elif loc == ("body",) and kind == "missing":
        message = "a JSON object body is required (Content-Type: application/json)"
    return {"field": field, "message": message}


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors in the API's one error shape (``error``, ``detail``), each field named in
    ``fields`` for clients that want them one by one. An identification refused so (a bad `top_k`, no image) is
    counted as the client's (`rejected`), like the route's own refusals."""
    if request.url.path == "/identify":
        from raiox.kit import metrics

        metrics.IDENTIFICATIONS.labels("rejected").inc()
    content_type = request.headers.get("content-type", "")
    fields = [_field_problem(e, content_type) for e in exc.errors()]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    return JSONResponse({"error": "invalid_request", "detail": detail, "fields": fields}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (an unknown route, a wrong method) in the same shape. An identification body that
    passes the route's limit while it is read (413) is counted as the client's (`rejected`)."""
    if request.url.path == "/identify" and exc.status_code == 413:
        from raiox.kit import metrics

        metrics.IDENTIFICATIONS.labels("rejected").inc()
    detail = str(exc.detail)
    if exc.status_code == 413 and isinstance(limit := request.scope.get(MAX_BODY_SIZE_SCOPE_KEY), int):
        detail = too_large(limit)  # a route's `max_body_size` passed while the body streamed in (Starlette's words
        # are "Content Too Large"); the same words as a declared length refused (kit.bodylimit)
    return JSONResponse({"error": HTTP_CODES.get(exc.status_code, "http_error"), "detail": detail},
                        status_code=exc.status_code, headers=exc.headers)


def add_error_handlers(app: FastAPI) -> None:
    """Every error of the JSON API as ``{"error": <code>, "detail": <reason>}`` (the API host and the admin host)."""
    app.add_exception_handler(RaioxError, _error_handler)
    app.add_exception_handler(DataError, _data_error_handler)
    for outage in database_errors():
        app.add_exception_handler(outage, _database_down)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage nothing above names: the API's error shape (Starlette still logs the traceback), not a bare
    text/plain "Internal Server Error"; the detail says nothing of the internals. Starlette renders it outside the
    app's middleware: the request's id is set here."""
    from raiox.kit.requestid import request_id_of

    request_id = request_id_of(request.scope)
    return JSONResponse({"error": "internal_error", "detail": "internal server error: the failure was logged"},
                        status_code=500, headers={"X-Request-ID": request_id} if request_id else None)


def _identify_refused(path: str) -> None:
    """A declared body over /identify's limit is counted as the client's (`rejected`), like the route's refusals."""
    if path == "/identify":
        from raiox.kit import metrics

        metrics.IDENTIFICATIONS.labels("rejected").inc()


def _run_worker() -> asyncio.Task:
    return asyncio.create_task(
        jobs.run_worker(install_signal_handlers=False, concurrency=2, wait=True), name="raiox-worker"
    )


def create_app(*, worker: bool = False) -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    for secret in (settings.jotform_api_key, settings.webhook_secret, settings.s3_secret_key, settings.smtp_password):
        register_secret(secret.get_secret_value() if secret else None)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from raiox.review.auth import warm_dummy_hash

        await asyncio.gather(jobs.app.open_async(), warm_dummy_hash())  # the panel's dummy hash made meanwhile
        task = _run_worker() if worker else None
        log.info("raiox_started", version=__version__, worker=worker)
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await jobs.app.close_async()
            from raiox.intake import fastpool
            from raiox.kit import db

            await fastpool.close()
            await db.release_embedded()  # the embedded PostgreSQL stops with the last process that used it

    # /docs is ours (raiox.kit.apidocs: Swagger UI from the app, no CDN, no inline script); FastAPI's ReDoc page
    # would load from a CDN too
    app = FastAPI(title="Raiox AI", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.openapi = lambda: openapi_document(app)
    from raiox.kit.apidocs import install_api_docs

    install_api_docs(app)
    add_error_handlers(app)
    from raiox.kit.auth import BearerFirst

    app.add_middleware(BearerFirst, paths={"/identify": "identify"})
    from raiox.kit.headers import HeadAsGet, NoStoreJSON

    app.add_middleware(NoStoreJSON)
    app.add_middleware(HeadAsGet)  # outside NoStoreJSON: a HEAD gets the GET's headers
    from raiox.cases.routes import router as cases_router
    from raiox.catalog.routes import router as catalog_router
    from raiox.kit import metrics
    from raiox.kit.bodylimit import DeclaredLengthFirst, route_limits
    from raiox.review.routes import router as review_router

    # outermost: before the token. The routes' own limits (/identify's; the JSON routes' JSON_MAX_BODY, set on their
    # routers); the webhook reads its body under its own rules (intake.formdata)
    app.add_middleware(DeclaredLengthFirst, limits=route_limits(review_router, cases_router, catalog_router),
                       refused=_identify_refused)
    app.include_router(health_router)
    # Domain routers are included below (each domain's routes.py exposes `router`).
    from raiox.intake.routes import router as intake_router

    app.include_router(intake_router)
    app.include_router(cases_router)
    from raiox.delivery.routes import router as delivery_router

    app.include_router(review_router)
    app.include_router(delivery_router)
    app.include_router(catalog_router)
    metrics.install(app)
    from raiox.kit.requestid import RequestId

    app.add_middleware(RequestId)  # outermost of ours: the answers of the ones above carry the id too
    from raiox.review.panel import create_panel

    app.mount("/admin", create_panel())
    return app


def app_from_environment() -> FastAPI:
    """Factory for `raiox serve --workers N` (uvicorn imports it in each server process)."""
    import os

    return create_app(worker=os.environ.get("RAIOX_SERVE_IN_PROCESS_WORKER", "1") == "1")
