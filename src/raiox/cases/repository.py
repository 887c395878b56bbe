"""SQL for cases and their history."""

import uuid

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseEvent, CaseImage, CaseRanking, Fixture, FixtureResult, ImplantSystem


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


async def list_cases(session: AsyncSession, *, status: str | None, submission_id: str | None, limit: int,
                     after: tuple | None) -> list[Case]:
    """Newest first, keyset-paginated on (created_at, id): AFTER is the last (created_at, id) seen."""
    query = select(Case).order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)
    if status:
        query = query.where(Case.status == status)
    if submission_id:
        query = query.where(Case.jotform_submission_id == submission_id)
    if after is not None:
        query = query.where(tuple_(Case.created_at, Case.id) < tuple_(*after))
    return list((await session.execute(query)).scalars())


async def case_images(session: AsyncSession, case_id: uuid.UUID) -> list[CaseImage]:
    query = select(CaseImage).where(CaseImage.case_id == case_id).order_by(CaseImage.position, CaseImage.id)
    return list((await session.execute(query)).scalars())


async def case_fixtures(session: AsyncSession, case_id: uuid.UUID) -> list[Fixture]:
    query = (select(Fixture).join(CaseImage, CaseImage.id == Fixture.case_image_id)
             .where(CaseImage.case_id == case_id).order_by(Fixture.case_image_id, Fixture.index))
    return list((await session.execute(query)).scalars())


async def case_results(session: AsyncSession, case_id: uuid.UUID) -> list:
    """(fixture_id, rank, system_id, manufacturer, name, score, reference_image_id) of every fixture."""
    query = (
        select(FixtureResult.fixture_id, FixtureResult.rank, FixtureResult.system_id, ImplantSystem.manufacturer,
               ImplantSystem.name, FixtureResult.score, FixtureResult.reference_image_id)
        .join(ImplantSystem, ImplantSystem.id == FixtureResult.system_id)
        .join(Fixture, Fixture.id == FixtureResult.fixture_id)
        .join(CaseImage, CaseImage.id == Fixture.case_image_id)
        .where(CaseImage.case_id == case_id).order_by(FixtureResult.fixture_id, FixtureResult.rank)
    )
    return list((await session.execute(query)).all())


async def case_ranking(session: AsyncSession, case_id: uuid.UUID) -> list:
    query = (
        select(CaseRanking.rank, CaseRanking.system_id, ImplantSystem.manufacturer, ImplantSystem.name,
               CaseRanking.score, CaseRanking.evidence)
        .join(ImplantSystem, ImplantSystem.id == CaseRanking.system_id)
        .where(CaseRanking.case_id == case_id).order_by(CaseRanking.rank)
    )
    return list((await session.execute(query)).all())
