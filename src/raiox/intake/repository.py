"""SQL for intake: idempotent case creation (one case per Jotform submission) and its images."""

import json
import uuid

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import Case, CaseEvent, CaseImage, CaseRanking, Fixture, FixtureResult


# Core statements on the tables (compiled once and cached): the webhook path runs them hundreds of
# times a second, the ORM's per-call coercion would cost more than the database round trips.
_cases, _images, _events = Case.__table__, CaseImage.__table__, CaseEvent.__table__
_INSERT_CASE = (insert(_cases).on_conflict_do_nothing(index_elements=[_cases.c.jotform_submission_id])
                .returning(_cases.c.id))
_INSERT_IMAGES = insert(_images).on_conflict_do_nothing(index_elements=[_images.c.case_id, _images.c.source_url])
_INSERT_EVENT = insert(_events)
_CASE_FOR_SUBMISSION = select(_cases.c.id).where(_cases.c.jotform_submission_id == bindparam("submission_id"))


async def insert_case(session: AsyncSession, values: dict) -> uuid.UUID | None:
    """INSERT ... ON CONFLICT DO NOTHING: the new case id, or None when the submission already has a case.

    A concurrent insert of the same submission waits on the unique index and then does nothing.
    """
    return (await session.execute(_INSERT_CASE, {"id": uuid.uuid4(), **values})).scalar_one_or_none()


_CREATE_CASE = text("""
    WITH new_case AS (
        INSERT INTO cases (id, jotform_submission_id, form_id, source, client_name, client_email, client_phone,
                           notes, answers, payload, status, submitted_at)
        VALUES (:id, :jotform_submission_id, :form_id, :source, :client_name, :client_email, :client_phone,
                :notes, CAST(:answers AS jsonb), CAST(:payload AS jsonb), :status, :submitted_at)
        ON CONFLICT (jotform_submission_id) DO NOTHING
        RETURNING id
    ), images AS (
        INSERT INTO case_images (id, case_id, position, question, source_url, filename, status)
        SELECT gen_random_uuid(), new_case.id, u.ord - 1, u.question, u.url, u.filename, 'pending'
        FROM new_case, unnest(CAST(:questions AS text[]), CAST(:urls AS text[]), CAST(:filenames AS text[]))
             WITH ORDINALITY AS u(question, url, filename, ord)
        ON CONFLICT (case_id, source_url) DO NOTHING
    ), event AS (
        INSERT INTO case_events (case_id, from_status, to_status, actor, reason)
        SELECT id, NULL, :status, :actor, :reason FROM new_case
    ), job AS (
        SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('default', :task, 0, 'case:' || new_case.id, NULL,
               jsonb_build_object('case_id', new_case.id::text), NULL)::procrastinate_job_to_defer_v1]) AS ids
        FROM new_case
    )
    SELECT new_case.id, job.ids FROM new_case, job
""")


async def create_case(session: AsyncSession, values: dict, uploads: list[tuple[str, str, str]], *, task: str,
                      actor: str, reason: str) -> uuid.UUID | None:
    """The case, its pending images (question, url, filename), its `received` event and its job, in ONE
    statement (one round trip: the webhook's hot path). None when the submission already has a case.

    Same effect as insert_case + insert_images + insert_event + kit.jobs.defer_in_session (lock
    "case:<id>"); a concurrent insert of the same submission waits on the unique index, then does nothing.
    """
    params = {**values, "id": uuid.uuid4(), "answers": json.dumps(values["answers"]),
              "payload": json.dumps(values["payload"]), "questions": [u[0] for u in uploads],
              "urls": [u[1] for u in uploads], "filenames": [u[2] for u in uploads], "task": task, "actor": actor,
              "reason": reason}
    row = (await session.execute(_CREATE_CASE, params)).first()
    return row[0] if row else None


async def case_id_for_submission(session: AsyncSession, submission_id: str) -> uuid.UUID | None:
    return (await session.execute(_CASE_FOR_SUBMISSION, {"submission_id": submission_id})).scalar_one_or_none()


async def existing_submission_ids(session: AsyncSession, submission_ids: list[str]) -> set[str]:
    if not submission_ids:
        return set()
    query = select(Case.jotform_submission_id).where(Case.jotform_submission_id.in_(submission_ids))
    return set((await session.execute(query)).scalars())


async def insert_images(session: AsyncSession, rows: list[dict]) -> None:
    if rows:
        await session.execute(_INSERT_IMAGES, rows)


async def insert_event(session: AsyncSession, case_id: uuid.UUID, to_status: str, actor: str, reason: str | None) -> None:
    await session.execute(_INSERT_EVENT, {"case_id": case_id, "from_status": None, "to_status": to_status,
                                          "actor": actor, "reason": reason})


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
