"""HTTP API of the catalog: `GET /implants`, `POST /identify`, `GET /metrics` (bearer token)."""

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.catalog import repository
from raiox.catalog.identify import Busy, CatalogMissing, identify, parse_boxes
from raiox.catalog.repository import has_embeddings
from raiox.catalog.schemas import IdentifyOut, SystemOut, SystemPage
from raiox.kit import metrics
from raiox.kit.auth import require_token
from raiox.kit.bodylimit import JSON_MAX_BODY
from raiox.kit.deps import DbSession
from raiox.kit.errors import BadRequest, RaioxError, TooLarge
from raiox.kit.settings import get_settings
from raiox.kit.storage import content_key, get_storage

router = APIRouter(tags=["catalog"], max_body_size=JSON_MAX_BODY)  # /identify: its own, below
AUTH_ERRORS = {401: {"description": "Missing, invalid or revoked bearer token"},
               403: {"description": "The token lacks the scope this needs"}}


@router.get("/implants", response_model=SystemPage, responses=AUTH_ERRORS, summary="List or search implant systems",
            dependencies=[Depends(require_token("identify"))])
async def list_implants(
    q: str | None = Query(None, description="Text in the id, name or manufacturer (case and accents ignored)"),
    manufacturer: str | None = Query(None, description="The whole manufacturer (case and accents ignored)"),
    active: bool | None = Query(None, description="Only active (true) or inactive (false) systems"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**62),
    session: AsyncSession = DbSession,
) -> SystemPage:
    """The catalog's implant systems (token scope `identify`), sorted by manufacturer and name, with how many
    reference images each has and how many are embedded with the current model (`model_id`). Pages by `offset` and
    `limit`: `total` counts every match, `next_offset` is the next page's offset (null on the last)."""
    model_id = _model_id()
    rows, total = await repository.list_systems(session, q=q, manufacturer=manufacturer, active=active, limit=limit,
                                                offset=offset, model_id=model_id)
    items = [
        SystemOut(id=s.id, manufacturer=s.manufacturer, name=s.name, connection=s.connection, body_shape=s.body_shape,
                  attributes=s.attributes or {}, active=s.active, reference_images=images, embedded=embedded)
        for s, images, embedded in rows
    ]
    after = offset + len(items)  # the next page's offset, none past the last
    return SystemPage(items=items, total=total, model_id=model_id,
                      next_offset=after if items and after < total else None)


# the whole request body, refused (413) as soon as it is known to pass this, before it is spooled: the image's own
# limit (RAIOX_DOWNLOAD_MAX_BYTES, checked by the route) plus room for the boxes field and the multipart framing
IDENTIFY_MAX_BODY = max(64 * 2**20, get_settings().download_max_bytes + 8 * 2**20)


# `boxes` as a client sends it: one box by its edges; two implants by their corners, platform edge first
BOXES_EXAMPLES = ["[[300, 90, 340, 300]]", "[[[310, 92], [338, 95], [330, 298], [302, 296]], "
                                           "[[420, 100], [452, 100], [452, 305], [420, 305]]]"]


def _model_id() -> str:
    from raiox.vision import get_embedder

    return get_embedder().model_id


@router.post(
    "/identify", response_model=IdentifyOut, response_model_exclude_none=True, summary="Identify implants in an image",
    responses={**AUTH_ERRORS, 400: {"description": "Empty upload, or more than one image"},
               413: {"description": "Image too large"}, 422: {"description": "Not a usable image, or a bad box"},
               503: {"description": "Busy: every analysis slot taken and RAIOX_IDENTIFY_MAX_WAITING images waiting"}},
    dependencies=[Depends(require_token("identify"))],
    max_body_size=IDENTIFY_MAX_BODY,
)
async def identify_image(
    request: Request,
    image: UploadFile = File(..., description="Radiograph: PNG, JPEG, TIFF, BMP, WEBP or DICOM (one per request)"),
    boxes: str | None = Form(None, description="Optional manual boxes (JSON), skipping the localiser: a list of "
                             "[x0, y0, x1, y1] (fitted to the implant it frames: its own axis and platform "
                             "end) or of four [x, y] corners, platform edge first, in the image's pixels",
                             examples=BOXES_EXAMPLES),
    top_k: int | None = Query(None, ge=1, le=50, description="Candidates per implant (default RAIOX_TOP_K)"),
    store: bool = Query(False, description="Keep the image in object storage (content-addressed)"),
    session: AsyncSession = DbSession,
) -> IdentifyOut:
    """Ranked candidate systems for every implant found in the image (or in each manual box), immediately.
    Nothing is stored unless `store=true`, which keeps the image bytes in object storage and returns their key."""
    settings = get_settings()
    try:
        data, manual = await _upload(request, image, boxes, settings.download_max_bytes)
        await session.commit()  # the token check's transaction ends: no pool connection is held through the analysis
        result = await identify(session, data, image.filename, top_k or settings.top_k, boxes=manual,
                                gone=request.is_disconnected, max_waiting=settings.identify_max_waiting)
        if not (await has_embeddings(session, result.model_id))[1]:  # every answer would be "no candidate"
            raise CatalogMissing(f"the catalog has no vectors of {result.model_id}: it is not loaded yet, or "
                                 "`raiox catalog reindex` was not run after the model changed")
    except Exception as exc:  # a bad upload is the client's ("rejected"), a full queue "busy"; the rest ours
        client = isinstance(exc, RaioxError) and exc.status_code < 500
        metrics.IDENTIFICATIONS.labels("busy" if isinstance(exc, Busy) else "rejected" if client else "error").inc()
        raise
    metrics.IDENTIFICATIONS.labels("ok").inc()
    if store:
        key, sha256 = content_key(data)
        await get_storage().put(key, data, image.content_type or "application/octet-stream")
        result.stored = {"key": key, "sha256": sha256}
    return result


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={**AUTH_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
            dependencies=[Depends(require_token("metrics"))])
async def get_metrics(session: AsyncSession = DbSession) -> Response:
    """The service's Prometheus metrics in the text exposition format (token scope `metrics`): HTTP requests and
    durations per route, webhooks, jobs, identifications, every audited write (`raiox_review_actions_total`), and
    gauges read from the database on each scrape (cases per status, the job queue, the catalog's size)."""
    await metrics.refresh_gauges(session)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


async def _upload(request: Request, image: UploadFile, boxes: str | None, limit: int) -> tuple[bytes, list | None]:
    """The one image's bytes (at most LIMIT) and the manual boxes, checked (400, 413, 422)."""
    if len((await request.form()).getlist("image")) > 1:
        raise BadRequest("one image per request: send each radiograph in its own POST /identify")
    manual = parse_boxes(boxes)
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"image larger than {limit} bytes")
    if not data:
        raise BadRequest("empty image upload")
    return data, manual
