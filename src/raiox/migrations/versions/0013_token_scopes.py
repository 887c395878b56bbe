"""api_tokens.scopes: what each API token may do (identify, cases, review, catalog, metrics; all)

Every token made before keeps "all", so nothing that works stops working; new tokens take the scopes they are
created with (`raiox tokens create NAME --scope ...`).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("scopes", postgresql.ARRAY(sa.String(20)), nullable=False,
                                          server_default=sa.text("'{all}'")))
    op.alter_column("api_tokens", "scopes", server_default=None)  # the existing tokens have it; new ones say theirs


def downgrade() -> None:
    op.drop_column("api_tokens", "scopes")
