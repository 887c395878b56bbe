"""All catalog SQL: implant systems, reference images, reference embeddings (search is in search.py)."""

import uuid
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from raiox.kit.db import LIKE_ESCAPE, literal_like
from raiox.kit.errors import Conflict
from raiox.models import ImplantSystem, ReferenceEmbedding, ReferenceImage
from raiox.models.catalog import NAME_KEY_INDEX, name_key

# what refuses a system with another's manufacturer + name: the pair as typed, and letter case, accents, spaces aside
NAME_CONSTRAINTS = {NAME_KEY_INDEX, "uq_implant_systems_manufacturer"}


ID_CONSTRAINT = "pk_implant_systems"  # what refuses a second system with the same id


def _constraint(exc: IntegrityError) -> str | None:
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None)


def name_clash(exc: IntegrityError) -> bool:
    """Whether EXC is the database refusing a system with another's manufacturer + name (a save racing another)."""
    return _constraint(exc) in NAME_CONSTRAINTS


def id_clash(exc: IntegrityError) -> bool:
    """Whether EXC is the database refusing a system whose id another has (a create racing another of the same id;
    the primary key is checked before the names, so the same id with the same names is this too)."""
    return _constraint(exc) == ID_CONSTRAINT


async def system_named(session: AsyncSession, manufacturer: str, name: str,
                       other_than: str | None = None) -> ImplantSystem | None:
    """The catalog system called MANUFACTURER NAME, letter case, accents and spaces aside (the key of the catalog's
    unique index, `raiox.models.catalog.name_key`), OTHER_THAN aside; None when there is none."""
    query = select(ImplantSystem).where(ImplantSystem.manufacturer_key == name_key(manufacturer),
                                        ImplantSystem.name_key == name_key(name))
    if other_than is not None:
        query = query.where(ImplantSystem.id != other_than)
    return (await session.execute(query.order_by(ImplantSystem.id).limit(1))).scalar_one_or_none()


async def count_systems(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(ImplantSystem))).scalar_one()


async def count_references_from(session: AsyncSession, source: str) -> int:
    """Reference images whose source is SOURCE (import | demo | case | upload)."""
    stmt = select(func.count()).select_from(ReferenceImage).where(ReferenceImage.source == source)
    return (await session.execute(stmt)).scalar_one()


async def catalog_size(session: AsyncSession) -> dict[str, int]:
    """Systems (active), reference images, embeddings per model: for /metrics and the CLI."""
    systems = (await session.execute(
        select(ImplantSystem.active, func.count()).group_by(ImplantSystem.active)
    )).all()
    images = (await session.execute(select(func.count()).select_from(ReferenceImage))).scalar_one()
    per_model = (await session.execute(
        select(ReferenceEmbedding.model_id, func.count()).group_by(ReferenceEmbedding.model_id)
    )).all()
    by_state = {bool(active): n for active, n in systems}
    return {
        "systems": sum(by_state.values()), "active_systems": by_state.get(True, 0), "reference_images": images,
        **{f"embeddings:{model}": n for model, n in per_model},
    }


async def box_localisers(session: AsyncSession) -> dict[str, int]:
    """Reference boxes per localiser that placed them (`reindex --relocate` redoes other localisers' boxes;
    "unknown": rows from before migration 0005); reviewed case references are left out."""
    localiser = func.coalesce(ReferenceImage.located_by, "unknown")
    rows = (await session.execute(
        select(localiser, func.count())
        .where(_has_box(), ReferenceImage.source != "case").group_by(localiser)
    )).all()
    return {f"boxes:{localiser}": n for localiser, n in rows}


async def upsert_system(
    session: AsyncSession, system_id: str, manufacturer: str, name: str, attributes: dict,
    spec: dict | None = None,
) -> None:
    """Create the system or merge the new attributes into it (the id is stable, never renamed). Conflict (409) when
    another system has the manufacturer + name (letter case, accents and spaces aside): the caller checks first
    (`system_named`); this is a save racing another. The transaction is then spoilt."""
    values = {
        "id": system_id, "manufacturer": manufacturer, "name": name, "attributes": attributes, "spec": spec,
        "manufacturer_key": name_key(manufacturer), "name_key": name_key(name),
        "connection": _text(attributes.get("connection")), "body_shape": _text(attributes.get("body_shape")),
    }
    stmt = insert(ImplantSystem).values(**values)
    update = {
        "attributes": ImplantSystem.attributes.op("||")(stmt.excluded.attributes),
        "connection": func.coalesce(stmt.excluded.connection, ImplantSystem.connection),
        "body_shape": func.coalesce(stmt.excluded.body_shape, ImplantSystem.body_shape),
        "spec": func.coalesce(stmt.excluded.spec, ImplantSystem.spec),
        "updated_at": func.now(),
    }
    try:
        await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update))
    except IntegrityError as exc:
        if not name_clash(exc):
            raise
        raise Conflict(f"system {system_id}: another catalog system is already called {manufacturer} {name} "
                       "(letter case, accents and spaces aside)") from exc


def _text(value: object) -> str | None:
    return str(value)[:80] if value not in (None, "") else None


async def find_references(session: AsyncSession, sha256s: Iterable[str]) -> dict[str, list[tuple[uuid.UUID, str]]]:
    """sha256 -> [(reference image id, system id)] for the given digests."""
    rows = (await session.execute(
        select(ReferenceImage.sha256, ReferenceImage.id, ReferenceImage.system_id)
        .where(ReferenceImage.sha256.in_(list(set(sha256s))))
    )).all()
    found: dict[str, list[tuple[uuid.UUID, str]]] = {}
    for sha, image_id, system_id in rows:
        found.setdefault(sha, []).append((image_id, system_id))
    return found


async def embedded_image_ids(session: AsyncSession, image_ids: Iterable[uuid.UUID], model_id: str) -> set[uuid.UUID]:
    rows = await session.execute(
        select(ReferenceEmbedding.reference_image_id).where(
            ReferenceEmbedding.model_id == model_id, ReferenceEmbedding.reference_image_id.in_(list(image_ids))
        )
    )
    return set(rows.scalars())


async def add_reference_image(session: AsyncSession, **values) -> uuid.UUID:
    """Insert a reference image (unique per system and sha256); returns the existing id if present."""
    stmt = insert(ReferenceImage).values(id=uuid.uuid4(), **values).on_conflict_do_nothing(
        index_elements=["system_id", "sha256"]
    ).returning(ReferenceImage.id)
    image_id = (await session.execute(stmt)).scalar()
    if image_id is None:
        image_id = (await session.execute(select(ReferenceImage.id).where(
            ReferenceImage.system_id == values["system_id"], ReferenceImage.sha256 == values["sha256"]
        ))).scalar_one()
    return image_id


async def put_embeddings(
    session: AsyncSession, rows: Sequence[tuple[uuid.UUID, str]], vectors: np.ndarray, model_id: str
) -> None:
    """Store one vector per (reference image, model); replaces a previous vector of the same model."""
    if not rows:
        return
    values = [
        {"reference_image_id": image_id, "system_id": system_id, "model_id": model_id, "embedding": vector}
        for (image_id, system_id), vector in zip(rows, np.asarray(vectors, dtype=np.float32), strict=True)
    ]
    stmt = insert(ReferenceEmbedding).values(values)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["reference_image_id", "model_id"],
        set_={"embedding": stmt.excluded.embedding, "created_at": func.now()},
    ))


def _has_box():
    """A reference with a fixture box (a whole-image one stores JSON null, not SQL NULL)."""
    return func.jsonb_typeof(ReferenceImage.box) == "array"


def _todo(stmt: Select, missing_model: str | None, stale_boxes: str | None) -> Select:
    """Only reference images lacking a vector of `missing_model`, or (either) whose fixture box another
    localiser than `stale_boxes` placed (boxes of case references are the reviewed ones: never stale)."""
    wanted = []
    if missing_model is not None:
        wanted.append(~select(ReferenceEmbedding.id).where(
            ReferenceEmbedding.reference_image_id == ReferenceImage.id, ReferenceEmbedding.model_id == missing_model
        ).exists())
    if stale_boxes is not None:
        wanted.append(and_(_has_box(), ReferenceImage.source != "case",
                           ReferenceImage.located_by.is_distinct_from(stale_boxes)))
    return stmt.where(or_(*wanted)) if wanted else stmt


async def reference_page(
    session: AsyncSession, after: uuid.UUID | None, limit: int, missing_model: str | None = None,
    stale_boxes: str | None = None,
) -> list[ReferenceImage]:
    """Reference images in id order (keyset pages); optionally only those `_todo` selects."""
    stmt = select(ReferenceImage).order_by(ReferenceImage.id).limit(limit)
    if after is not None:
        stmt = stmt.where(ReferenceImage.id > after)
    return list((await session.execute(_todo(stmt, missing_model, stale_boxes))).scalars())


async def count_references(session: AsyncSession, missing_model: str | None = None,
                           stale_boxes: str | None = None) -> int:
    stmt = select(func.count()).select_from(ReferenceImage)
    return (await session.execute(_todo(stmt, missing_model, stale_boxes))).scalar_one()


async def embedding_coverage(session: AsyncSession, model_id: str) -> dict:
    """How ready the catalog is for `model_id`: its reference images, how many lack a vector of the model, and
    whether the model's vector index exists (`raiox catalog status`; the deploy reindexes when it is not ready)."""
    from raiox.catalog.vector_index import has_vector_index

    references = await count_references(session)
    missing = await count_references(session, model_id)
    return {"references": references, "embedded": references - missing, "missing": missing,
            "vector_index": await has_vector_index(session, model_id)}


async def set_box(session: AsyncSession, image_id: uuid.UUID, box: list | None, located_by: str) -> None:
    """Record a reference's fixture box and the localiser that placed or confirmed it."""
    await session.execute(update(ReferenceImage).where(ReferenceImage.id == image_id).values(
        box=box, located_by=located_by))


async def has_embeddings(session: AsyncSession, model_id: str) -> tuple[bool, bool]:
    """Whether the catalog holds any reference vector, and any of `model_id` (index probes, for /readyz)."""
    anything = select(ReferenceEmbedding.id).exists()
    ours = select(ReferenceEmbedding.id).where(ReferenceEmbedding.model_id == model_id).exists()
    row = (await session.execute(select(anything, ours))).one()
    return bool(row[0]), bool(row[1])


async def has_references(session: AsyncSession) -> bool:
    """Whether the catalog holds any reference image (an index probe, for /readyz)."""
    return bool((await session.execute(select(select(ReferenceImage.id).exists()))).scalar_one())


async def delete_other_models(session: AsyncSession, model_id: str) -> int:
    """Drop embeddings of every model but `model_id` (after a reindex, on request)."""
    from sqlalchemy import delete

    result = await session.execute(delete(ReferenceEmbedding).where(ReferenceEmbedding.model_id != model_id))
    return result.rowcount or 0


def _systems_query(q: str | None, manufacturer: str | None, active: bool | None) -> Select:
    """`GET /implants`' filter: `q` anywhere in the id, name or maker, `manufacturer` the whole maker. The name and
    the maker are compared as their stored keys and the typed text folded with `name_key` in Python (case, accents
    and runs of spaces aside, whatever the database's locale: "conexao" finds "Conexão", "presny" "Přesný", as the
    panel's search does); `%` and `_` are characters to find, never wildcards."""
    stmt = select(ImplantSystem)
    if q:
        pattern = literal_like(name_key(q))
        stmt = stmt.where(or_(ImplantSystem.name_key.like(pattern, escape=LIKE_ESCAPE),
                              ImplantSystem.manufacturer_key.like(pattern, escape=LIKE_ESCAPE),
                              ImplantSystem.id.ilike(pattern, escape=LIKE_ESCAPE)))
    if manufacturer:
        stmt = stmt.where(ImplantSystem.manufacturer_key == name_key(manufacturer))
    if active is not None:
        stmt = stmt.where(ImplantSystem.active.is_(active))
    return stmt


async def list_systems(
    session: AsyncSession, *, q: str | None = None, manufacturer: str | None = None, active: bool | None = None,
    limit: int = 50, offset: int = 0, model_id: str | None = None,
) -> tuple[list[tuple[ImplantSystem, int, int]], int]:
    """A page of systems with (reference images, embeddings of `model_id`) counts, and the total."""
    base = _systems_query(q, manufacturer, active)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    images = select(func.count(ReferenceImage.id)).where(ReferenceImage.system_id == ImplantSystem.id)
    embedded = select(func.count(ReferenceEmbedding.id)).where(and_(
        ReferenceEmbedding.system_id == ImplantSystem.id, ReferenceEmbedding.model_id == (model_id or "")
    ))
    stmt = base.add_columns(images.scalar_subquery(), embedded.scalar_subquery()).order_by(
        ImplantSystem.manufacturer, ImplantSystem.name
    ).limit(limit).offset(offset)
    return [(system, n_images, n_embedded)
            for system, n_images, n_embedded in (await session.execute(stmt)).all()], total


async def systems_by_id(session: AsyncSession, ids: Iterable[str]) -> dict[str, ImplantSystem]:
    """The systems of ``ids`` by id (unknown ids left out), in one query; none without ids."""
    ids = list(set(ids))
    if not ids:
        return {}
    rows = await session.execute(select(ImplantSystem).where(ImplantSystem.id.in_(ids)))
    return {system.id: system for system in rows.scalars()}


def _unscrubbed():
    """References `raiox catalog scrub-references` has work on: a stored object that may hold the file's metadata,
    or a replaced object whose deletion is pending."""
    return or_(ReferenceImage.metadata_free.is_(False), ReferenceImage.replaced_key.is_not(None))


async def unscrubbed_page(session: AsyncSession, after: uuid.UUID | None, limit: int) -> list[ReferenceImage]:
    """`_unscrubbed` references in id order (keyset pages: one left as it was is not met again in the same run)."""
    stmt = select(ReferenceImage).where(_unscrubbed()).order_by(ReferenceImage.id).limit(limit)
    if after is not None:
        stmt = stmt.where(ReferenceImage.id > after)
    return list((await session.execute(stmt)).scalars())


async def count_unscrubbed(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(ReferenceImage).where(_unscrubbed()))).scalar_one()


async def reference_for_update(session: AsyncSession, image_id: uuid.UUID) -> ReferenceImage | None:
    """The reference, its row locked until the transaction ends (None: removed meanwhile)."""
    return (await session.execute(
        select(ReferenceImage).where(ReferenceImage.id == image_id).with_for_update()
    )).scalar_one_or_none()


async def set_stored_object(session: AsyncSession, image_id: uuid.UUID, *, storage_key: str,
                            replaced_key: str | None) -> None:
    """Record that the reference's object under STORAGE_KEY is metadata-free, and the object it replaced (None:
    nothing to delete)."""
    await session.execute(update(ReferenceImage).where(ReferenceImage.id == image_id).values(
        storage_key=storage_key, metadata_free=True, replaced_key=replaced_key))
