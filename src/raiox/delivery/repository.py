"""SQL for deliveries."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import CaseImage, Delivery, Fixture, ImplantSystem


async def get_delivery(session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False) -> Delivery | None:
    query = select(Delivery).where(Delivery.case_id == case_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_system(session: AsyncSession, system_id: str | None) -> ImplantSystem | None:
    if not system_id:
        return None
    return await session.get(ImplantSystem, system_id)


async def systems_in_order(session: AsyncSession, ids: list[str]) -> list[ImplantSystem | None]:
    """The systems of IDS in that order (None for an unknown id), in one query."""
    from raiox.catalog.repository import systems_by_id

    found = await systems_by_id(session, ids)
    return [found.get(i) for i in ids]


async def implant_places(session: AsyncSession, fixture_ids: list[str]) -> dict[str, tuple[int, int, list]]:
    """Fixture id -> (film number, implant number, box) as the panel numbers them (from 1), for the ids that exist."""
    ids = [uuid.UUID(i) for i in fixture_ids]
    if not ids:
        return {}
    query = (select(Fixture.id, CaseImage.position, Fixture.index, Fixture.box)
             .join(CaseImage, CaseImage.id == Fixture.case_image_id).where(Fixture.id.in_(ids)))
    return {str(f): (position + 1, index + 1, box) for f, position, index, box in (await session.execute(query)).all()}
