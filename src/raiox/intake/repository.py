"""SQL for intake: idempotent case creation (one case per Jotform submission) and its images."""

import json
import uuid

from psycopg import AsyncConnection
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseImage, CaseRanking, Fixture, FixtureResult, ImageStatus


# The webhook's hot path runs on psycopg directly (one statement per delivery, hundreds a second):
# `create_case` takes a psycopg AsyncConnection — from the webhook pool (raiox.intake.fastpool) or
# the driver connection under an SQLAlchemy session (`driver_connection`), inside its transaction.
CREATE_CASE = """
    WITH new_case AS (
        INSERT INTO cases (id, jotform_submission_id, form_id, source, client_name, client_email, client_phone,
                           notes, tooth, answers, payload, status, submitted_at)
        VALUES (%(id)s, %(jotform_submission_id)s, %(form_id)s, %(source)s, %(client_name)s, %(client_email)s,
                %(client_phone)s, %(notes)s, %(tooth)s, %(answers)s::jsonb, %(payload)s::jsonb, %(status)s,
                %(submitted_at)s)
        ON CONFLICT (jotform_submission_id) DO NOTHING
        RETURNING id
    ), images AS (
        INSERT INTO case_images (id, case_id, position, question, source_url, filename, status)
        SELECT gen_random_uuid(), new_case.id, u.ord - 1, u.question, u.url, u.filename, 'pending'
        FROM new_case, unnest(%(questions)s::text[], %(urls)s::text[], %(filenames)s::text[])
             WITH ORDINALITY AS u(question, url, filename, ord)
        ON CONFLICT (case_id, md5(source_url)) DO NOTHING
    ), event AS (
        INSERT INTO case_events (case_id, from_status, to_status, actor, reason)
        SELECT id, NULL, %(status)s, %(actor)s, %(reason)s FROM new_case
    ), job AS (
        SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('default', %(task)s, 0, 'case:' || new_case.id, NULL,
               jsonb_build_object('case_id', new_case.id::text), NULL)::procrastinate_job_to_defer_v1]) AS ids
        FROM new_case
    )
    SELECT new_case.id, job.ids FROM new_case, job
"""
FIND_CASE = "SELECT id, status FROM cases WHERE jotform_submission_id = %(submission_id)s"
DEFER_JOB = ("SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW('default', %(task)s, 0, NULL, NULL,"
             " %(args)s::jsonb, NULL)::procrastinate_job_to_defer_v1]))")


async def driver_connection(session: AsyncSession) -> AsyncConnection:
    """The psycopg connection under SESSION, inside the session's transaction."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def create_case(conn: AsyncConnection, values: dict, uploads: list[tuple[str, str, str]], *, task: str,
                      actor: str, reason: str) -> uuid.UUID | None:
    """The case, its pending images (question, url, filename), its `received` event and its job, in ONE
    statement. None when the submission already has a case (nothing written).

    Same effect as inserting each row and kit.jobs.defer_in_session (lock "case:<id>") in the
    caller's transaction; a concurrent insert of the same submission waits on the unique index, then
    does nothing."""
    params = {**values, "id": uuid.uuid4(), "answers": json.dumps(values["answers"]),
              "payload": json.dumps(values["payload"]), "questions": [u[0] for u in uploads],
              "urls": [u[1] for u in uploads], "filenames": [u[2] for u in uploads], "task": task, "actor": actor,
              "reason": reason}
    row = await (await conn.execute(CREATE_CASE, params)).fetchone()
    return row[0] if row else None


async def find_case(conn: AsyncConnection, submission_id: str) -> tuple[uuid.UUID, str] | None:
    """(id, current status) of the case of SUBMISSION_ID, or None."""
    row = await (await conn.execute(FIND_CASE, {"submission_id": submission_id})).fetchone()
    return (row[0], row[1]) if row else None


async def defer_job(conn: AsyncConnection, task: str, args: dict) -> int:
    """kit.jobs.defer_in_session for a psycopg connection (same procrastinate function)."""
    return (await (await conn.execute(DEFER_JOB, {"task": task, "args": json.dumps(args)})).fetchone())[0]


async def case_id_for_submission(session: AsyncSession, submission_id: str) -> uuid.UUID | None:
    query = select(Case.id).where(Case.jotform_submission_id == submission_id)
    return (await session.execute(query)).scalar_one_or_none()


async def existing_submission_ids(session: AsyncSession, submission_ids: list[str]) -> set[str]:
    if not submission_ids:
        return set()
    query = select(Case.jotform_submission_id).where(Case.jotform_submission_id.in_(submission_ids))
    return set((await session.execute(query)).scalars())


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


async def settle_stored_image(session: AsyncSession, image_id: uuid.UUID, **values) -> None:
    """IMAGE_ID's row updated with VALUES only while it is still `stored` (a run beside this one may have saved its
    analysis meanwhile: that stands)."""
    await session.execute(update(CaseImage).where(CaseImage.id == image_id, CaseImage.status == ImageStatus.stored)
                          .values(**values))


async def skip_stored_images(session: AsyncSession, case_id: uuid.UUID, reason: str) -> int:
    """The case's films still `stored` (their analysis never saved) become `skipped` with REASON; how many."""
    result = await session.execute(update(CaseImage).where(CaseImage.case_id == case_id,
                                                           CaseImage.status == ImageStatus.stored)
                                   .values(status=ImageStatus.skipped, error=reason))
    return result.rowcount


async def fail_pending_images(session: AsyncSession, case_id: uuid.UUID, reason: str) -> None:
    await session.execute(update(CaseImage).where(CaseImage.case_id == case_id, CaseImage.status == ImageStatus.pending)
                          .values(status=ImageStatus.failed, error=reason))


async def delete_automatic_fixtures(session: AsyncSession, case_id: uuid.UUID) -> None:
    """Drop the detected fixtures (their results cascade) and the ranking: a re-run replaces them.

    Fixtures drawn by the operator (manual) are kept."""
    images = select(CaseImage.id).where(CaseImage.case_id == case_id)
    await session.execute(delete(Fixture).where(Fixture.case_image_id.in_(images), Fixture.manual.is_(False)))
    await delete_ranking(session, case_id)


async def delete_ranking(session: AsyncSession, case_id: uuid.UUID) -> None:
    await session.execute(delete(CaseRanking).where(CaseRanking.case_id == case_id))


async def next_fixture_index(session: AsyncSession, image_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.max(Fixture.index), -1)).where(Fixture.case_image_id == image_id)
    return int((await session.execute(query)).scalar_one()) + 1


async def insert_fixture(session: AsyncSession, values: dict) -> uuid.UUID:
    fixture_id = uuid.uuid4()
    await session.execute(insert(Fixture).values(id=fixture_id, **values))
    return fixture_id


async def update_fixture(session: AsyncSession, fixture_id: uuid.UUID, values: dict) -> None:
    await session.execute(update(Fixture).where(Fixture.id == fixture_id).values(**values))


async def delete_results(session: AsyncSession, fixture_id: uuid.UUID) -> None:
    await session.execute(delete(FixtureResult).where(FixtureResult.fixture_id == fixture_id))


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
