"""deliveries.email_attempted_at: when the result e-mail was handed to the SMTP server, recorded before the send

An e-mail the server accepted while recording `email_sent_at` failed (a database blip, the worker killed in that
window) must not be sent again by the job's retry: the retry finds the attempt without `email_sent_at` and leaves
the delivery for the operator instead (check with the dentist, then resend or mark delivered).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("email_attempted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "email_attempted_at")
