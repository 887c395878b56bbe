"""Partial HNSW indexes, one per embedding model, and pgvector capability detection.

pgvector < 0.8 filters *after* the HNSW scan, which returns at most `hnsw.ef_search` rows: a filter
on `model_id` would starve the scan once several models share the table. A partial index
`WHERE model_id = '<id>'` holds only that model's vectors, so the scan never wastes candidates on
other models. The default model's index comes from migration 0002; other models get theirs from
`ensure_vector_index` when their first embeddings are written (import, demo, reindex).
"""

import hashlib
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Chosen from bench/search.py (docs/benchmarks.md, "Search"); migration 0003 uses the same values.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
INDEX_PREFIX = "ix_refemb_hnsw_"


def index_name(model_id: str) -> str:
    """A stable, valid identifier (<= 63 bytes) for the model's partial index."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower()).strip("_")[:32]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{INDEX_PREFIX}{slug}_{digest}"


def sql_literal(value: str) -> str:
    """A standard-conforming SQL string literal (partial-index predicates cannot take parameters)."""
    if "\x00" in value:
        raise ValueError("NUL byte in model id")
    return "'" + value.replace("'", "''") + "'"


def create_index_sql(model_id: str, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION) -> str:
    return (
        f'CREATE INDEX IF NOT EXISTS "{index_name(model_id)}" ON reference_embeddings '
        f"USING hnsw (embedding vector_cosine_ops) WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE model_id = {sql_literal(model_id)}"
    )


async def has_vector_index(session: AsyncSession, model_id: str) -> bool:
    """Whether the model's partial HNSW index exists."""
    exists = "SELECT 1 FROM pg_class WHERE relname = :name AND relkind = 'i'"
    return (await session.execute(text(exists), {"name": index_name(model_id)})).first() is not None


async def ensure_vector_index(session: AsyncSession, model_id: str) -> bool:
    """Create the model's partial HNSW index if missing (serialised by an advisory lock). True if created.
    Creating one takes the table's owner (the migration role in production, `migrate.env`): the app role can only
    use an index that exists."""
    name = index_name(model_id)
    if not await has_vector_index(session, model_id):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "raiox:" + name})
        if not await has_vector_index(session, model_id):
            await session.execute(text(create_index_sql(model_id)))
            return True
    return False


async def pgvector_version(session: AsyncSession) -> tuple[int, ...]:
    """The installed pgvector version, e.g. (0, 6, 2); cached on the session."""
    if "pgvector_version" not in session.info:
        raw = (await session.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))).scalar()
        session.info["pgvector_version"] = tuple(int(p) for p in re.findall(r"\d+", raw or "0"))
    return session.info["pgvector_version"]


async def has_iterative_scan(session: AsyncSession) -> bool:
    """pgvector >= 0.8 can resume an HNSW scan until the filtered LIMIT is satisfied."""
    return await pgvector_version(session) >= (0, 8)
