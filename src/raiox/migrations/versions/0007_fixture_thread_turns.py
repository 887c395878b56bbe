"""fixtures.thread_turns: the fixture's length over thread pitch counted on the film (raiox.vision.threads)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fixtures", sa.Column("thread_turns", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("fixtures", "thread_turns")
