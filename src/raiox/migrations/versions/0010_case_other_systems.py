"""cases.other_system_ids: the other implant systems an approval names (films with implants of several systems)

`approved_system_id` stays the first (main) system; the others, in the reviewer's order, go to the dentist with it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("other_system_ids", postgresql.ARRAY(sa.String(120)), nullable=False,
                                     server_default=sa.text("'{}'")))


def downgrade() -> None:
    op.drop_column("cases", "other_system_ids")
