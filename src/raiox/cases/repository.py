"""SQL for cases and their history."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseEvent


async def get_case(session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False) -> Case | None:
    query = select(Case).where(Case.id == case_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def add_event(session: AsyncSession, event: CaseEvent) -> None:
    session.add(event)
    await session.flush()


async def list_events(session: AsyncSession, case_id: uuid.UUID) -> list[CaseEvent]:
    query = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
    return list((await session.execute(query)).scalars())
