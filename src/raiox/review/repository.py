"""SQL for the review panel: queue, counts, audit log, catalog look-ups, case detail."""

import uuid
from datetime import date, datetime, time, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.models import (
    AuditEntry, Case, CaseImage, CaseRanking, Fixture, FixtureResult, ImplantSystem, ReferenceEmbedding,
    ReferenceImage, User,
)


def _filtered(query: Select, *, status: str | None, client: str | None, search: str | None,
              date_from: date | None, date_to: date | None) -> Select:
    if status:
        query = query.where(Case.status == status)
    if client:
        like = f"%{client}%"
        query = query.where(or_(Case.client_name.ilike(like), Case.client_email.ilike(like)))
    if search:
        like = f"%{search}%"
        query = query.where(or_(
            Case.jotform_submission_id.ilike(like), Case.client_name.ilike(like), Case.client_email.ilike(like),
            Case.client_phone.ilike(like), Case.notes.ilike(like),
        ))
    if date_from:
        query = query.where(Case.created_at >= datetime.combine(date_from, time.min).astimezone())
    if date_to:
        query = query.where(Case.created_at < datetime.combine(date_to + timedelta(days=1), time.min).astimezone())
    return query


async def queue(session: AsyncSession, *, limit: int = 50, offset: int = 0, **filters) -> tuple[list[Case], int]:
    """Cases matching FILTERS, oldest first; and their total count."""
    base = _filtered(select(Case), **filters)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(base.order_by(Case.created_at, Case.id).limit(limit).offset(offset))
    return list(rows.scalars()), total


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Case.status, func.count()).group_by(Case.status))
    return {status: count for status, count in rows.all()}


async def audit_for_case(session: AsyncSession, case_id: uuid.UUID) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.id.desc())
    return list((await session.execute(query)).scalars())


async def case_images(session: AsyncSession, case_id: uuid.UUID) -> list[CaseImage]:
    query = select(CaseImage).where(CaseImage.case_id == case_id).order_by(CaseImage.position, CaseImage.created_at)
    return list((await session.execute(query)).scalars())


async def fixtures_with_results(session: AsyncSession, image_ids: list[uuid.UUID]) -> list[tuple[Fixture, list[FixtureResult]]]:
    if not image_ids:
        return []
    fixtures = list((await session.execute(
        select(Fixture).where(Fixture.case_image_id.in_(image_ids)).order_by(Fixture.case_image_id, Fixture.index)
    )).scalars())
    results = (await session.execute(
        select(FixtureResult).where(FixtureResult.fixture_id.in_([f.id for f in fixtures])).order_by(FixtureResult.rank)
    )).scalars() if fixtures else []
    by_fixture: dict[uuid.UUID, list[FixtureResult]] = {}
    for result in results:
        by_fixture.setdefault(result.fixture_id, []).append(result)
    return [(f, by_fixture.get(f.id, [])) for f in fixtures]


async def ranking(session: AsyncSession, case_id: uuid.UUID) -> list[CaseRanking]:
    query = select(CaseRanking).where(CaseRanking.case_id == case_id).order_by(CaseRanking.rank)
    return list((await session.execute(query)).scalars())


async def first_reference(session: AsyncSession, system_ids: set[str]) -> dict[str, uuid.UUID]:
    """One reference image per system (the oldest), for systems without a matched reference."""
    if not system_ids:
        return {}
    query = (select(ReferenceImage.system_id, ReferenceImage.id)
             .where(ReferenceImage.system_id.in_(system_ids))
             .ext(distinct_on(ReferenceImage.system_id))
             .order_by(ReferenceImage.system_id, ReferenceImage.created_at, ReferenceImage.id))
    return {system_id: ref_id for system_id, ref_id in (await session.execute(query)).all()}


async def search_systems(session: AsyncSession, text: str = "", *, limit: int = 20, active_only: bool = False,
                         offset: int = 0) -> list[ImplantSystem]:
    query = select(ImplantSystem)
    for word in text.split():
        like = f"%{word}%"
        query = query.where(or_(ImplantSystem.id.ilike(like), ImplantSystem.name.ilike(like),
                                ImplantSystem.manufacturer.ilike(like), ImplantSystem.connection.ilike(like)))
    if active_only:
        query = query.where(ImplantSystem.active.is_(True))
    query = query.order_by(ImplantSystem.manufacturer, ImplantSystem.name).limit(limit).offset(offset)
    return list((await session.execute(query)).scalars())


async def reference_counts(session: AsyncSession, system_ids: list[str]) -> dict[str, int]:
    if not system_ids:
        return {}
    query = (select(ReferenceImage.system_id, func.count()).where(ReferenceImage.system_id.in_(system_ids))
             .group_by(ReferenceImage.system_id))
    return dict((await session.execute(query)).all())


async def references_of(session: AsyncSession, system_id: str) -> list[ReferenceImage]:
    query = select(ReferenceImage).where(ReferenceImage.system_id == system_id).order_by(ReferenceImage.created_at)
    return list((await session.execute(query)).scalars())


async def reference_by_sha(session: AsyncSession, system_id: str, sha256: str) -> ReferenceImage | None:
    query = select(ReferenceImage).where(ReferenceImage.system_id == system_id, ReferenceImage.sha256 == sha256)
    return (await session.execute(query)).scalar_one_or_none()


async def add_embedding(session: AsyncSession, embedding: ReferenceEmbedding) -> None:
    session.add(embedding)
    await session.flush()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()
