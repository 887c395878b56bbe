"""SQL for deliveries."""

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import AuditEntry, CaseImage, Delivery, Fixture, ImplantSystem


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
    """Fixture id -> (film number, implant number, box) as the panel numbers them (``raiox.cases.numbering``), for
    the ids that exist."""
    from raiox.cases.numbering import implant_numbers

    ids = [uuid.UUID(i) for i in fixture_ids]
    if not ids:
        return {}
    films = select(Fixture.case_image_id).where(Fixture.id.in_(ids))
    query = (select(Fixture, CaseImage.position).join(CaseImage, CaseImage.id == Fixture.case_image_id)
             .where(Fixture.case_image_id.in_(films)))
    rows = (await session.execute(query)).all()
    by_film: dict[uuid.UUID, list] = {}
    for fixture, _position in rows:
        by_film.setdefault(fixture.case_image_id, []).append(fixture)
    numbers = {k: v for film in by_film.values() for k, v in implant_numbers(film).items()}
    return {str(f.id): (position + 1, numbers[f.id], f.box) for f, position in rows if f.id in ids}


async def delivery_in_flight(session: AsyncSession, case_id: uuid.UUID) -> bool:
    """Whether a `deliver_result` job of the case is queued or running (procrastinate's table, by the job's lock)."""
    query = text("SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE lock = :lock AND status IN ('todo', 'doing'))")
    return bool((await session.execute(query, {"lock": f"deliver:{case_id}"})).scalar_one())


async def was_sent_again(session: AsyncSession, case_id: uuid.UUID) -> bool:
    """Whether the reviewer asked to send the case's result again (`delivery.redeliver`)."""
    query = select(AuditEntry.id).where(AuditEntry.case_id == case_id,
                                        AuditEntry.action == "delivery.redeliver").limit(1)
    return (await session.execute(query)).first() is not None
