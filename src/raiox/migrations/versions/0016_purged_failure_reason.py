"""Purged cases keep the kind of their failure, not its detail

A failed case's reason named its files, their upload addresses and error texts ("no usable image (joao-36.jpg:
...)"); purging now keeps only "no usable image (details removed)". This clears the detail of cases purged before.
The rule is copied here (not imported) so that this revision never changes with the code.

Revision ID: 0016
Revises: 0015
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

DETAIL = re.compile(r": | \(")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, failure_reason FROM cases "
                                "WHERE purged_at IS NOT NULL AND failure_reason IS NOT NULL")).all()
    for case_id, reason in rows:
        if (start := DETAIL.search(reason)) is None:
            continue
        kept = reason[:start.end()] + "details removed" + (")" if start.group() == " (" else "")
        bind.execute(sa.text("UPDATE cases SET failure_reason = :r WHERE id = :i"), {"r": kept, "i": case_id})


def downgrade() -> None:
    """Nothing to restore: the detail is gone."""
