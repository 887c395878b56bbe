"""SQL for intake: idempotent case creation (one case per Jotform submission) and its images."""

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseEvent, CaseImage


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
