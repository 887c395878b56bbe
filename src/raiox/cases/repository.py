"""SQL for cases and their history."""

import uuid

from datetime import datetime

from sqlalchemy import Text, cast, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import (
    AuditEntry, Case, CaseEvent, CaseImage, CaseRanking, Delivery, Fixture, FixtureResult, ImplantSystem,
    ReferenceImage,
)


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


async def expired_case_ids(session: AsyncSession, statuses: set[str], before: datetime, limit: int) -> list[uuid.UUID]:
    """Cases in STATUSES, not purged, last changed before BEFORE, oldest first."""
    query = (select(Case.id).where(Case.status.in_(statuses), Case.purged_at.is_(None), Case.updated_at < before)
             .order_by(Case.updated_at).limit(limit))
    return list((await session.execute(query)).scalars())


async def delete_images(session: AsyncSession, case_id: uuid.UUID) -> None:
    """The case's images (their implants and results cascade)."""
    await session.execute(delete(CaseImage).where(CaseImage.case_id == case_id))


async def keys_in_use(session: AsyncSession, keys: set[str]) -> set[str]:
    """Those of KEYS that a catalog reference or an image of any case still stores (content-addressed objects)."""
    if not keys:
        return set()
    refs = select(ReferenceImage.storage_key).where(ReferenceImage.storage_key.in_(keys))
    images = select(CaseImage.storage_key).where(CaseImage.storage_key.in_(keys))
    return set((await session.execute(refs.union(images))).scalars())


async def clear_case_texts(session: AsyncSession, case_id: uuid.UUID) -> None:
    """Free texts that may name the patient or the dentist: event reasons, audit messages and notes, the delivery's
    last error."""
    await session.execute(update(CaseEvent).where(CaseEvent.case_id == case_id).values(reason=None))
    texts = ("message", "note", "email", "email_before")  # and the full length `kit.audit.capped` kept of a long one
    gone = cast(array([*texts, *(f"{key}_chars" for key in texts)]), ARRAY(Text))
    await session.execute(update(AuditEntry).where(AuditEntry.case_id == case_id)
                          .values(details=AuditEntry.details.op("-")(gone)))
    await session.execute(update(Delivery).where(Delivery.case_id == case_id).values(last_error=None))
