"""SQL for the review panel: queue, counts, audit log, catalog look-ups, case detail."""

import uuid
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import Select, and_, case, delete, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import LIKE_ESCAPE, fold_text, folded, literal_like
from raiox.models import (
    AuditEntry, Case, CaseEvent, CaseImage, CaseRanking, CaseStatus, Fixture, FixtureResult, ImplantSystem, LoginLock,
    LoginThrottle,
    ReferenceEmbedding, ReferenceImage, User,
)
from raiox.review import search_terms


def _contains(columns, text: str):
    """Any of COLUMNS holds TEXT, ignoring case and accents ("joao" finds "João"); ``%`` and ``_`` in it are
    characters, not wildcards."""
    pattern = literal_like(fold_text(text))
    return or_(*(folded(column).like(pattern, escape=LIKE_ESCAPE) for column in columns))


def _filtered(query: Select, *, status: str | None, client: str | None, search: str | None,
              date_from: date | None, date_to: date | None, zone: tzinfo = UTC, outcome: str | None = None) -> Select:
    """DATE_FROM / DATE_TO: days as the operator's calendar in ZONE has them (RAIOX_ADMIN_TIMEZONE); OUTCOME
    (approved / rejected): the reviewer's decision, whatever the case's status became since (delivered...)."""
    if outcome:
        decided = Case.approved_system_id.is_not(None) if outcome == "approved" else Case.approved_system_id.is_(None)
        query = query.where(Case.reviewed_at.is_not(None), decided)
    if status:  # one status, or several (the queue's "needs action")
        query = query.where(Case.status.in_(status) if isinstance(status, tuple | list) else Case.status == status)
    if client:
        query = query.where(_contains((Case.client_name, Case.client_email), client))
    if search:
        query = query.where(_contains((Case.jotform_submission_id, Case.client_name, Case.client_email,
                                       Case.client_phone, Case.notes, Case.tooth), search))
    if date_from:
        query = query.where(Case.created_at >= datetime.combine(date_from, time.min, tzinfo=zone))
    if date_to:
        query = query.where(Case.created_at < datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=zone))
    return query


async def queue(session: AsyncSession, *, limit: int = 50, offset: int = 0, **filters) -> tuple[list[Case], int]:
    """Cases matching FILTERS, oldest first; and their total count."""
    base = _filtered(select(Case), **filters)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(base.order_by(Case.created_at, Case.id).limit(limit).offset(offset))
    return list(rows.scalars()), total


async def next_to_review(session: AsyncSession, case_id: uuid.UUID) -> Case | None:
    """The case the operator reviews next once CASE_ID is done: the oldest one awaiting review besides it (the
    queue's order), None when none waits."""
    query = (select(Case).where(Case.status == CaseStatus.awaiting_review, Case.id != case_id)
             .order_by(Case.created_at, Case.id).limit(1))
    return (await session.execute(query)).scalars().first()


async def status_counts(session: AsyncSession, *, client: str | None = None, search: str | None = None,
                        date_from: date | None = None, date_to: date | None = None,
                        zone: tzinfo = UTC, outcome: str | None = None) -> dict[str, int]:
    """Cases per status among those the queue's other filters (dentist, search, days) keep: the counts beside the
    status tabs agree with the list each tab opens."""
    query = _filtered(select(Case.status, func.count()), status=None, client=client, search=search,
                      date_from=date_from, date_to=date_to, zone=zone, outcome=outcome)
    rows = await session.execute(query.group_by(Case.status))
    return {status: count for status, count in rows.all()}


async def audit_for_case(session: AsyncSession, case_id: uuid.UUID) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.id.desc())
    return list((await session.execute(query)).scalars())


SYSTEM_ACTIONS = ("catalog.create", "catalog.update", "catalog.upload", "catalog.reference_remove",
                  "catalog.reference_scrub")  # audited with the system's id as their target


async def audit_for_system(session: AsyncSession, system_id: str, limit: int = 50) -> list[AuditEntry]:
    """The catalog changes of one system (created, edited, references uploaded, removed, scrubbed), newest first."""
    query = (select(AuditEntry).where(AuditEntry.target == system_id, AuditEntry.action.in_(SYSTEM_ACTIONS))
             .order_by(AuditEntry.id.desc()).limit(limit))
    return list((await session.execute(query)).scalars())


async def audit_log(session: AsyncSession, *, action: str | None = None, actor: str | None = None,
                    target: str | None = None, date_from: date | None = None, date_to: date | None = None,
                    zone: tzinfo = UTC, limit: int = 50, offset: int = 0,
                    count: bool = True) -> tuple[list[tuple[AuditEntry, str | None]], int | None]:
    """Audit entries, newest first, each with its case's protocol (Jotform submission id) when it is a case's; and
    their total (None unless COUNT). ACTION: one action exactly; ACTOR: text in who did it; TARGET: text in what was
    acted on (a system, a token, a user) or in the case's protocol; DATE_FROM / DATE_TO: days in ZONE (the queue's)."""
    query = select(AuditEntry, Case.jotform_submission_id).outerjoin(Case, Case.id == AuditEntry.case_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(_contains((AuditEntry.actor,), actor))
    if target:
        query = query.where(_contains((AuditEntry.target, Case.jotform_submission_id), target))
    if date_from:
        query = query.where(AuditEntry.created_at >= datetime.combine(date_from, time.min, tzinfo=zone))
    if date_to:
        query = query.where(AuditEntry.created_at < datetime.combine(date_to + timedelta(days=1), time.min,
                                                                     tzinfo=zone))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one() if count else None
    rows = await session.execute(query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
                                 .limit(limit).offset(offset))
    return [(entry, protocol) for entry, protocol in rows.all()], total


async def case_images(session: AsyncSession, case_id: uuid.UUID) -> list[CaseImage]:
    query = select(CaseImage).where(CaseImage.case_id == case_id).order_by(CaseImage.position, CaseImage.created_at)
    return list((await session.execute(query)).scalars())


async def fixtures_with_results(session: AsyncSession,
                                image_ids: list[uuid.UUID]) -> list[tuple[Fixture, list[FixtureResult]]]:
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


async def case_image(session: AsyncSession, case_id: uuid.UUID, image_id: uuid.UUID) -> CaseImage | None:
    query = select(CaseImage).where(CaseImage.id == image_id, CaseImage.case_id == case_id)
    return (await session.execute(query)).scalar_one_or_none()


async def case_fixture(session: AsyncSession, case_id: uuid.UUID,
                       fixture_id: uuid.UUID) -> tuple[Fixture, CaseImage] | None:
    """The fixture with its image, when it belongs to CASE_ID."""
    query = (select(Fixture, CaseImage).join(CaseImage, CaseImage.id == Fixture.case_image_id)
             .where(Fixture.id == fixture_id, CaseImage.case_id == case_id))
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def case_fixture_models(session: AsyncSession, case_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Each fixture of the case (id) and the model that embedded it."""
    query = (select(Fixture.id, Fixture.model_id).join(CaseImage, CaseImage.id == Fixture.case_image_id)
             .where(CaseImage.case_id == case_id))
    return dict((await session.execute(query)).all())


async def stale_cases(session: AsyncSession, model_id: str) -> list[uuid.UUID]:
    """Cases awaiting review with an implant embedded by another model than MODEL_ID, oldest first."""
    query = (select(Case.id).join(CaseImage, CaseImage.case_id == Case.id)
             .join(Fixture, Fixture.case_image_id == CaseImage.id)
             .where(Case.status == CaseStatus.awaiting_review, Fixture.model_id != model_id)
             .group_by(Case.id).order_by(func.min(Case.created_at), Case.id))
    return list((await session.execute(query)).scalars())


async def image_fixtures(session: AsyncSession, image_id: uuid.UUID) -> list[Fixture]:
    return list((await session.execute(select(Fixture).where(Fixture.case_image_id == image_id))).scalars())


async def delete_fixture(session: AsyncSession, fixture_id: uuid.UUID) -> None:
    await session.execute(delete(Fixture).where(Fixture.id == fixture_id))


async def first_result(session: AsyncSession, fixture_id: uuid.UUID) -> ImplantSystem | None:
    query = (select(ImplantSystem).join(FixtureResult, FixtureResult.system_id == ImplantSystem.id)
             .where(FixtureResult.fixture_id == fixture_id).order_by(FixtureResult.rank).limit(1))
    return (await session.execute(query)).scalar_one_or_none()


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


MAX_WORDS = 8  # of a system search: a name, a maker, a connection (3,000 words made one request take seconds)


def _system_text():
    """What a system search reads of a system, folded: its id, name, maker, connection and body shape, and the
    connection kind its geometry spec names ("internal_hex" as "internal hex"); one line each, so that no phrase
    runs from one into the next. The name and the maker are read as the stored keys the catalog keeps them unique by
    (`name_key`: Unicode case folding, every accent dropped, computed in Python, not by the database's locale), the
    typed words folded the same way (`search_terms`); the rest with `folded`."""
    kind = func.replace(ImplantSystem.spec["connection"]["kind"].astext, "_", " ")
    return func.concat_ws("\n", folded(ImplantSystem.id), ImplantSystem.name_key, ImplantSystem.manufacturer_key,
                          folded(ImplantSystem.connection), folded(ImplantSystem.body_shape), folded(kind))


async def search_systems(session: AsyncSession, text: str = "", *, limit: int = 20, active_only: bool = False,
                         offset: int = 0) -> list[ImplantSystem]:
    """Systems with every word of TEXT in their id, name, maker, connection or body shape, ignoring case and accents;
    a pt-BR design word ("hexágono", "interno", "cônica", "cone Morse", "CM", "trilobada", "cônico"...) is found
    as the catalog types it as well ("internal hex", "conical", "CM 11.5°": `search_terms`)."""
    query = _systems_found(text, active_only)
    query = query.order_by(ImplantSystem.manufacturer, ImplantSystem.name).limit(limit).offset(offset)
    return list((await session.execute(query)).scalars())


async def count_systems(session: AsyncSession, text: str = "", *, active_only: bool = False) -> int:
    """How many systems `search_systems` finds for TEXT in all (the catalog's "Página X de Y")."""
    query = _systems_found(text, active_only)
    return (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()


def _systems_found(text: str, active_only: bool) -> Select:
    searched = _system_text()

    def found(word: search_terms.Word):
        return or_(*(searched.like(literal_like(t), escape=LIKE_ESCAPE) for t in word.texts),
                   *((searched.op("~")(word.pattern),) if word.pattern else ()))

    query = select(ImplantSystem).where(and_(true(), *(found(w) for w in search_terms.search_words(text, MAX_WORDS))))
    return query.where(ImplantSystem.active.is_(True)) if active_only else query


async def reference_counts(session: AsyncSession, system_ids: list[str]) -> dict[str, int]:
    if not system_ids:
        return {}
    query = (select(ReferenceImage.system_id, func.count()).where(ReferenceImage.system_id.in_(system_ids))
             .group_by(ReferenceImage.system_id))
    return dict((await session.execute(query)).all())


async def references_of(session: AsyncSession, system_id: str) -> list[ReferenceImage]:
    query = (select(ReferenceImage).where(ReferenceImage.system_id == system_id)
             .order_by(ReferenceImage.created_at, ReferenceImage.id))  # rows of one transaction share created_at
    return list((await session.execute(query)).scalars())


async def system_reference(session: AsyncSession, system_id: str, reference_id: uuid.UUID) -> ReferenceImage | None:
    query = select(ReferenceImage).where(ReferenceImage.id == reference_id, ReferenceImage.system_id == system_id)
    return (await session.execute(query)).scalar_one_or_none()


async def delete_reference(session: AsyncSession, reference_id: uuid.UUID) -> None:
    """The reference image row (its vectors cascade; case results that cited it keep their score, without it)."""
    await session.execute(delete(ReferenceImage).where(ReferenceImage.id == reference_id))


async def references_by_sha(session: AsyncSession, sha256: str) -> bool:
    """Whether an image with this content is a reference already (of any system)."""
    query = select(ReferenceImage.id).where(ReferenceImage.sha256 == sha256).limit(1)
    return (await session.execute(query)).first() is not None


async def audit_times(session: AsyncSession, case_id: uuid.UUID, action: str, since: datetime) -> list[datetime]:
    """When ACTION was recorded on the case since SINCE, newest first."""
    query = (select(AuditEntry.created_at).where(AuditEntry.case_id == case_id, AuditEntry.action == action,
                                                 AuditEntry.created_at >= since).order_by(AuditEntry.created_at.desc()))
    return list((await session.execute(query)).scalars())


async def last_event_reason(session: AsyncSession, case_id: uuid.UUID) -> str | None:
    """The reason of the case's latest status change."""
    query = select(CaseEvent.reason).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def add_embedding(session: AsyncSession, embedding: ReferenceEmbedding) -> None:
    session.add(embedding)
    await session.flush()


async def user_by_email(session: AsyncSession, email: str, *, fresh: bool = False) -> User | None:
    """The user with that e-mail; FRESH re-reads the row even when the session already holds it."""
    query = select(User).where(User.email == email.strip().lower())
    if fresh:
        query = query.execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


def _unlocked(now: datetime):
    return or_(User.locked_until.is_(None), User.locked_until <= now)


async def count_login_failure(session: AsyncSession, user_id: uuid.UUID, *, now: datetime, limit: int,
                              lock_until: datetime) -> tuple[int, datetime | None] | None:
    """One more failed login, counted in one statement (parallel failures cannot lose one): the LIMIT-th locks
    the account until LOCK_UNTIL and restarts the count. None when the account is locked already (not counted);
    else (failed_logins, locked_until) after it."""
    reached = User.failed_logins + 1 >= limit
    query = (update(User).where(User.id == user_id, _unlocked(now))
             .values(failed_logins=case((reached, 0), else_=User.failed_logins + 1),
                     locked_until=case((reached, lock_until), else_=User.locked_until))
             .returning(User.failed_logins, User.locked_until)
             .execution_options(synchronize_session=False))
    row = (await session.execute(query)).first()
    return (row.failed_logins, row.locked_until) if row else None


async def count_login_success(session: AsyncSession, user_id: uuid.UUID, *, now: datetime,
                              trusted: bool = False) -> bool:
    """Clears the failure count and records the login, unless a parallel failure locked the account meanwhile
    (TRUSTED: a source the account's lock does not apply to)."""
    query = (update(User).where(User.id == user_id, *(() if trusted else (_unlocked(now),)))
             .values(failed_logins=0, locked_until=None, last_login_at=now).returning(User.id)
             .execution_options(synchronize_session=False))
    return (await session.execute(query)).first() is not None


async def source_locked(session: AsyncSession, user_id: uuid.UUID, source: str, now: datetime) -> bool:
    query = select(LoginLock.locked_until).where(LoginLock.user_id == user_id, LoginLock.source == source)
    until = (await session.execute(query)).scalar_one_or_none()
    return until is not None and until > now


async def count_source_failure(session: AsyncSession, user_id: uuid.UUID, source: str, *, now: datetime, limit: int,
                               lock_until: datetime) -> datetime | None:
    """One more failed login on the account from SOURCE, counted in one statement: the LIMIT-th locks that source
    out of the account until LOCK_UNTIL and restarts its count. Its lock's end (None: not locked). Rows left
    untouched for a day and not locked are dropped on the way (the table stays small)."""
    await drop_stale_locks(session, now)
    row = LoginLock.__table__.c
    reached = row.failures + 1 >= limit
    query = (pg_insert(LoginLock).values(user_id=user_id, source=source, failures=0 if limit <= 1 else 1,
                                         locked_until=lock_until if limit <= 1 else None, updated_at=now)
             .on_conflict_do_update(index_elements=[row.user_id, row.source], set_={
                 "failures": case((reached, 0), else_=row.failures + 1),
                 "locked_until": case((reached, lock_until), else_=row.locked_until), "updated_at": now},
                 where=or_(row.locked_until.is_(None), row.locked_until <= now))
             .returning(row.locked_until))
    return (await session.execute(query)).scalar_one_or_none()


async def drop_stale_locks(session: AsyncSession, now: datetime) -> int:
    """Drop the per-account source rows (`login_locks`, client addresses) untouched for a day, not locked and not a
    source the account signed in from in the last 30 days; how many. Done on each failed login and by the daily
    retention job (`purge_expired_cases`), so that an address nobody fails from again does not stay."""
    result = await session.execute(delete(LoginLock).where(
        LoginLock.updated_at < now - timedelta(days=1),
        or_(LoginLock.locked_until.is_(None), LoginLock.locked_until <= now),
        or_(LoginLock.last_success_at.is_(None), LoginLock.last_success_at < now - timedelta(days=30))))
    return result.rowcount


async def drop_stale_throttle(session: AsyncSession, now: datetime) -> int:
    """Drop the address throttle's rows (`login_throttle`) whose window began over a day ago and that are not locked;
    how many. Done on each failed login and by the daily retention job."""
    result = await session.execute(delete(LoginThrottle).where(
        LoginThrottle.window_started_at < now - timedelta(days=1),
        or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now)))
    return result.rowcount


async def addressed_audit_entries(session: AsyncSession, before: datetime, marker: str,
                                  limit: int) -> list[AuditEntry]:
    """Sign-in entries (`auth.*`) written by an address (actor `ip:...`) before BEFORE and not anonymised yet
    (actor MARKER), oldest first, at most LIMIT."""
    query = (select(AuditEntry).where(AuditEntry.action.like("auth.%"), AuditEntry.actor.like("ip:%"),
                                      AuditEntry.actor != marker, AuditEntry.created_at < before)
             .order_by(AuditEntry.id).limit(limit))
    return list((await session.execute(query)).scalars())


async def address_throttled(session: AsyncSession, source: str, now: datetime) -> bool:
    """Whether SOURCE is refused every login now (`count_address_failure` locked it)."""
    query = select(LoginThrottle.locked_until).where(LoginThrottle.source == source)
    until = (await session.execute(query)).scalar_one_or_none()
    return until is not None and until > now


async def count_address_failure(session: AsyncSession, source: str, *, now: datetime, window: timedelta, limit: int,
                                lock_until: datetime) -> datetime | None:
    """One more failed login from SOURCE, whatever the account, counted in one statement shared by every panel
    process: a count whose window began WINDOW ago or more (or whose lock ended) starts again at this failure, and the
    LIMIT-th failure within the window refuses the address until LOCK_UNTIL. The lock's end when this failure set it,
    else None (a failure counted while another process's lock holds changes nothing). Rows over a day old and not
    locked are dropped on the way (the table stays small)."""
    await drop_stale_throttle(session, now)
    row = LoginThrottle.__table__.c
    fresh = or_(row.window_started_at <= now - window, row.locked_until.is_not(None))  # a lock here has ended
    counted = case((fresh, 1), else_=row.failures + 1)
    query = (pg_insert(LoginThrottle).values(source=source, failures=1, window_started_at=now,
                                             locked_until=lock_until if limit <= 1 else None)
             .on_conflict_do_update(index_elements=[row.source], set_={
                 "failures": counted, "window_started_at": case((fresh, now), else_=row.window_started_at),
                 "locked_until": case((counted >= limit, lock_until), else_=None)},
                 where=or_(row.locked_until.is_(None), row.locked_until <= now))
             .returning(row.locked_until))
    until = (await session.execute(query)).scalar_one_or_none()
    return until if until == lock_until else None


async def source_trusted(session: AsyncSession, user_id: uuid.UUID, source: str, since: datetime) -> bool:
    """Whether the account signed in from SOURCE since SINCE."""
    query = select(LoginLock.last_success_at).where(LoginLock.user_id == user_id, LoginLock.source == source)
    last = (await session.execute(query)).scalar_one_or_none()
    return last is not None and last >= since


async def trust_source(session: AsyncSession, user_id: uuid.UUID, source: str, now: datetime) -> None:
    """A successful login from SOURCE: its failures are forgotten and it is remembered as the operator's."""
    row = LoginLock.__table__.c
    query = (pg_insert(LoginLock).values(user_id=user_id, source=source, failures=0, locked_until=None,
                                         updated_at=now, last_success_at=now)
             .on_conflict_do_update(index_elements=[row.user_id, row.source], set_={
                 "failures": 0, "locked_until": None, "updated_at": now, "last_success_at": now}))
    await session.execute(query)


async def clear_source(session: AsyncSession, user_id: uuid.UUID, source: str | None = None) -> None:
    """Forget SOURCE's failed logins on the account (every source's when None)."""
    query = delete(LoginLock).where(LoginLock.user_id == user_id)
    await session.execute(query if source is None else query.where(LoginLock.source == source))


async def users(session: AsyncSession) -> list[User]:
    return list((await session.execute(select(User).order_by(User.email))).scalars())


async def end_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Bumps the user's session generation: every panel cookie issued before stops working. The new generation."""
    query = (update(User).where(User.id == user_id).values(session_generation=User.session_generation + 1)
             .returning(User.session_generation).execution_options(synchronize_session=False))
    return (await session.execute(query)).scalar_one()
