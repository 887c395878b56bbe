"""rebuild the default model's HNSW index with ef_construction = 128

bench/search.py (docs/benchmarks.md, "Search"): at 100k clustered references, m=16 with
ef_construction=64 tops out at recall@10 0.997 and needs ef_search=100 for 0.986, while
ef_construction=128 reaches 0.998 at ef_search=40 and 1.0 from 64: a better graph for ~2-3x the
build time, paid once (and on an empty or small catalog when this migration runs).

Revision ID: 0003
Revises: 0002
"""

import hashlib

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MODEL_ID = "raiox-v1"
NAME = f"ix_refemb_hnsw_raiox_v1_{hashlib.sha256(MODEL_ID.encode()).hexdigest()[:8]}"


def _create(ef_construction: int) -> None:
    op.execute(f'DROP INDEX IF EXISTS "{NAME}"')
    op.execute(
        f'CREATE INDEX "{NAME}" ON reference_embeddings USING hnsw (embedding vector_cosine_ops) '
        f"WITH (m = 16, ef_construction = {ef_construction}) WHERE model_id = '{MODEL_ID}'"
    )


def upgrade() -> None:
    _create(128)


def downgrade() -> None:
    _create(64)
