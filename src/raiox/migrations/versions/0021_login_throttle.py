"""login_throttle: failed panel logins per source address, whatever the account

The panel refuses an address for a while after 20 failed logins in 15 minutes (any accounts, unknown ones
included). That count was kept in each panel process's memory, so each of production's processes counted on its
own; it is now one row per address, shared by every process, counted by a single statement.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
