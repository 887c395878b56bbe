"""cases.tooth: the tooth or region the dentist names on the form ("36", "região de 46", "anterior superior")

Read by the intake (RAIOX_JOTFORM_FIELD_MAP "tooth", or detected from the question's name: docs/intake.md); at most
60 characters (what the one-page report has room for), on one line. Cases received before stay without it (their answer is still among the form answers).
Cleared by the retention purge like the dentist's other answers.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("tooth", sa.String(60), nullable=True))


def downgrade() -> None:
    op.drop_column("cases", "tooth")
