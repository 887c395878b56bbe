"""partial HNSW index (cosine) on reference embeddings of the default model

One partial index per embedding model keeps filtered searches from starving HNSW on pgvector < 0.8
(see raiox.catalog.vector_index). Other models get theirs at run time (`ensure_vector_index`).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MODEL_ID = "raiox-v1"
# Same definition as raiox.catalog.vector_index.create_index_sql("raiox-v1") (frozen here).
INDEX = "ix_refemb_hnsw_raiox_v1_{digest}"


def _name() -> str:
    import hashlib

    return INDEX.format(digest=hashlib.sha256(MODEL_ID.encode()).hexdigest()[:8])


def upgrade() -> None:
    op.execute(
        f'CREATE INDEX IF NOT EXISTS "{_name()}" ON reference_embeddings '
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE model_id = '{MODEL_ID}'"
    )
    op.create_index("ix_reference_embeddings_model_id", "reference_embeddings", ["model_id", "system_id"])


def downgrade() -> None:
    op.drop_index("ix_reference_embeddings_model_id", table_name="reference_embeddings")
    op.execute(f'DROP INDEX IF EXISTS "{_name()}"')
