"""fixtures.connection: the connection reader's probabilities per fixture (shown to the reviewer)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fixtures", sa.Column("connection", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("fixtures", "connection")
