"""SQL for intake: idempotent case creation (one case per Jotform submission) and its images."""

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseEvent, CaseImage, CaseRanking, Fixture, FixtureResult


async def insert_case(session: AsyncSession, values: dict) -> uuid.UUID | None:
    """INSERT ... ON CONFLICT DO NOTHING: the new case id, or None when the submission already has a case.

    A concurrent insert of the same submission waits on the unique index and then does nothing.
    """
    query = (
        insert(Case).values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[Case.jotform_submission_id])
        .returning(Case.id)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def case_id_for_submission(session: AsyncSession, submission_id: str) -> uuid.UUID | None:
    query = select(Case.id).where(Case.jotform_submission_id == submission_id)
    return (await session.execute(query)).scalar_one_or_none()


async def existing_submission_ids(session: AsyncSession, submission_ids: list[str]) -> set[str]:
    if not submission_ids:
        return set()
    query = select(Case.jotform_submission_id).where(Case.jotform_submission_id.in_(submission_ids))
    return set((await session.execute(query)).scalars())


async def insert_images(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        query = insert(CaseImage).values(rows).on_conflict_do_nothing(index_elements=["case_id", "source_url"])
        await session.execute(query)


async def insert_event(session: AsyncSession, case_id: uuid.UUID, to_status: str, actor: str, reason: str | None) -> None:
    await session.execute(insert(CaseEvent).values(case_id=case_id, from_status=None, to_status=to_status,
                                                   actor=actor, reason=reason))


async def reset_failed_images(session: AsyncSession, case_id: uuid.UUID) -> None:
    await session.execute(
        update(CaseImage).where(CaseImage.case_id == case_id, CaseImage.status == "failed")
        .values(status="pending", error=None)
    )


async def list_images(session: AsyncSession, case_id: uuid.UUID) -> list[CaseImage]:
    query = select(CaseImage).where(CaseImage.case_id == case_id).order_by(CaseImage.position, CaseImage.id)
    return list((await session.execute(query)).scalars())


async def update_image(session: AsyncSession, image_id: uuid.UUID, **values) -> None:
    await session.execute(update(CaseImage).where(CaseImage.id == image_id).values(**values))


async def delete_automatic_fixtures(session: AsyncSession, case_id: uuid.UUID) -> None:
    """Drop the detected fixtures (their results cascade) and the ranking: a re-run replaces them.

    Fixtures drawn by the operator (manual) are kept."""
    images = select(CaseImage.id).where(CaseImage.case_id == case_id)
    await session.execute(delete(Fixture).where(Fixture.case_image_id.in_(images), Fixture.manual.is_(False)))
    await session.execute(delete(CaseRanking).where(CaseRanking.case_id == case_id))


async def next_fixture_index(session: AsyncSession, image_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.max(Fixture.index), -1)).where(Fixture.case_image_id == image_id)
    return int((await session.execute(query)).scalar_one()) + 1


async def insert_fixture(session: AsyncSession, values: dict) -> uuid.UUID:
    fixture_id = uuid.uuid4()
    await session.execute(insert(Fixture).values(id=fixture_id, **values))
    return fixture_id


async def insert_results(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        await session.execute(insert(FixtureResult).values(rows))


async def case_evidence(session: AsyncSession, case_id: uuid.UUID) -> list:
    """Every (image, fixture, result) of the case: the input of the fused ranking."""
    query = (
        select(CaseImage.id.label("image_id"), Fixture.id.label("fixture_id"), Fixture.index.label("fixture_index"),
               FixtureResult.rank, FixtureResult.system_id, FixtureResult.score, FixtureResult.reference_image_id)
        .join(Fixture, Fixture.case_image_id == CaseImage.id)
        .join(FixtureResult, FixtureResult.fixture_id == Fixture.id)
        .where(CaseImage.case_id == case_id)
        .order_by(CaseImage.position, Fixture.index, FixtureResult.rank)
    )
    return list((await session.execute(query)).all())


async def count_fixtures(session: AsyncSession, case_id: uuid.UUID) -> int:
    query = (select(func.count()).select_from(Fixture).join(CaseImage, CaseImage.id == Fixture.case_image_id)
             .where(CaseImage.case_id == case_id))
    return int((await session.execute(query)).scalar_one())


async def insert_rankings(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        await session.execute(insert(CaseRanking).values(rows))
