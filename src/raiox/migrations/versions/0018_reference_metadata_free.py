"""reference_images.metadata_free, reference_images.replaced_key: which references store a copy without the file's
metadata, for `raiox catalog scrub-references` (raiox.catalog.scrub)

Until commit 710be27 a reference stored the file itself, under the content key of its own bytes, which is also its
`sha256`: `sha256/<2 hex>/<sha256>` (a case reference shared the case film's object, stored the same way). Since, it
stores `raiox.vision.metadata_free`'s copy under that copy's content key. So a reference whose key is not the one
its sha256 gives holds such a copy (true); one whose key is holds the file as given, with its metadata, or a copy
byte for byte equal to it, which the scrub finds out by reading it (false). Every store after this migration sets it.
`replaced_key` is the object a scrub replaced, until it is deleted after the scrub's commit (a rerun finishes it).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reference_images", sa.Column("metadata_free", sa.Boolean(), server_default="false",
                                                nullable=False))
    op.add_column("reference_images", sa.Column("replaced_key", sa.String(300), nullable=True))
    op.execute("UPDATE reference_images SET metadata_free = true "
               "WHERE storage_key <> 'sha256/' || left(sha256, 2) || '/' || sha256")


def downgrade() -> None:
    op.drop_column("reference_images", "replaced_key")
    op.drop_column("reference_images", "metadata_free")
