"""fixtures.features: the design-feature reader's probabilities per fixture (shown to the reviewer)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fixtures", sa.Column("features", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("fixtures", "features")
