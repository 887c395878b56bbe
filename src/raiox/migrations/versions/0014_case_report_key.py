"""cases.report_key: the key a case's report links carry, changed to revoke them

NULL (every case until then): links without a key are valid, as before. Revoking a report link ("Revogar link",
or sending the result again with a new link) sets a new random key: every link made before stops working.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("report_key", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("cases", "report_key")
