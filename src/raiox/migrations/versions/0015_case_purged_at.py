"""cases.purged_at: when a closed case's films and personal data were removed (data retention, LGPD)

The case row stays (its Jotform submission id, so a re-sent webhook never recreates it; status, decision and dates
for the statistics); the films, implants, the dentist's data, form answers and free texts are gone.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("cases", "purged_at")
