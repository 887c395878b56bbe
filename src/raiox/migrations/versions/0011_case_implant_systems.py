"""cases.implant_systems: which approved system each implant on the films is (fixture id -> system id)

Filled when the reviewer says it (films with implants of several systems); the dentist's report and e-mail then name
each numbered implant's system. Empty: not stated (one system, or the reviewer did not map them).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("implant_systems", postgresql.JSONB(), nullable=False,
                                     server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column("cases", "implant_systems")
