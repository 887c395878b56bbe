"""reference_images.located_by: the localiser that placed (or last confirmed) a reference's fixture box

Rows from before it hold NULL (localiser unknown): `raiox catalog reindex --relocate` locates them again.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reference_images", sa.Column("located_by", sa.String(40), nullable=True))


def downgrade() -> None:
    op.drop_column("reference_images", "located_by")
