"""Image bytes for the panel, only through authenticated routes (never public storage URLs)."""

import uuid

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.deps import DbSession
from raiox.kit.errors import NotFound
from raiox.models import CaseImage, Fixture, ReferenceImage, User
from raiox.review import images
from raiox.review.deps import current_user

router = APIRouter(prefix="/media")
# a patient's film never stays in the browser's cache (a shared computer, after logout); catalog references may
PATIENT = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
CATALOG = {"Cache-Control": "private, max-age=600", "X-Content-Type-Options": "nosniff"}
WIDTH = Query(None, ge=16, le=4096, description="Longest side of the rendition, in pixels")


async def _serve(storage_key: str | None, filename: str | None, max_side: int | None, crop: list | None = None,
                 headers: dict = PATIENT) -> Response:
    if not storage_key:
        raise NotFound("image not stored")
    data, media_type = await images.load(storage_key, filename, crop=crop, max_side=max_side)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/case-images/{image_id}")
async def case_image(image_id: uuid.UUID, w: int | None = WIDTH, user: User = Depends(current_user),
                     session: AsyncSession = DbSession) -> Response:
    image = await session.get(CaseImage, image_id)
    if image is None:
        raise NotFound("image not found")
    return await _serve(image.storage_key, image.filename, w)


@router.get("/fixtures/{fixture_id}")
async def fixture_crop(fixture_id: uuid.UUID, user: User = Depends(current_user),
                       session: AsyncSession = DbSession) -> Response:
    """The implant's region of its X-ray (box bounds plus a margin), to set beside a reference image."""
    fixture = await session.get(Fixture, fixture_id)
    image = await session.get(CaseImage, fixture.case_image_id) if fixture else None
    if image is None:
        raise NotFound("fixture not found")
    return await _serve(image.storage_key, image.filename, 480, crop=fixture.box)


@router.get("/references/{reference_id}")
async def reference_image(reference_id: uuid.UUID, w: int | None = WIDTH, user: User = Depends(current_user),
                          session: AsyncSession = DbSession) -> Response:
    ref = await session.get(ReferenceImage, reference_id)
    if ref is None:
        raise NotFound("reference image not found")
    return await _serve(ref.storage_key, None, w, headers=PATIENT if ref.source == "case" else CATALOG)
