"""case_images: one row per (case, md5 of the upload URL) instead of (case, URL)

A btree entry holds at most ~2.7 kB: a submission with a longer upload URL failed its insert and lost the case.
The digest keeps the same idempotence (a webhook delivered twice adds no image) for URLs of any length.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE UNIQUE INDEX uq_case_images_case_id_url_md5 ON case_images (case_id, md5(source_url))")
    op.drop_constraint("uq_case_images_case_id", "case_images", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_case_images_case_id", "case_images", ["case_id", "source_url"])
    op.drop_index("uq_case_images_case_id_url_md5", table_name="case_images")
