"""implant_systems: the look-alike key computed by the application, not by the database's locale

Migration 0022's unique index folded letter case with PostgreSQL's lower(), which folds a non-ASCII letter only as
the database's LC_CTYPE says (under "C", "ØSTER" and "øster" stay apart; a glibc upgrade may change it under an index
built on it). The key (`raiox.models.catalog.name_key`: Unicode case folding, accents dropped, whitespace collapsed
and trimmed) is now computed in Python and stored in two columns, `manufacturer_key` and `name_key`, filled here for
every system; `uq_implant_systems_name_key` is rebuilt on them.

As in 0022, look-alikes already there (now also those only Unicode case folding tells apart) are not changed: each
group is logged as a warning and the index is left out; docs/operations.md, "Look-alike catalog systems", says how
to rename or merge them and create the index afterwards.

Revision ID: 0023
Revises: 0022
"""

import importlib
import logging
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
INDEX = "uq_implant_systems_name_key"
SPACES = re.compile("[\\s\u200b\ufeff]+")
ACCENTS = re.compile("[\u0300-\u036f]")


def key(text: str) -> str:
    """raiox.models.catalog.name_key as of this revision (tests/kit/test_migration_name_key.py compares them)."""
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return SPACES.sub(" ", ACCENTS.sub("", folded)).strip()


CREATE = f"CREATE UNIQUE INDEX IF NOT EXISTS {INDEX} ON implant_systems (manufacturer_key, name_key)"
LOOKALIKES = ("SELECT string_agg(id || ' (' || manufacturer || ' / ' || name || ')', ', ' ORDER BY id) "
              "FROM implant_systems GROUP BY manufacturer_key, name_key HAVING count(*) > 1")


def upgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.add_column("implant_systems", sa.Column("manufacturer_key", sa.Text(), nullable=True))
    op.add_column("implant_systems", sa.Column("name_key", sa.Text(), nullable=True))
    bind = op.get_bind()
    systems = bind.execute(sa.text("SELECT id, manufacturer, name FROM implant_systems")).all()
    if systems:
        bind.execute(sa.text("UPDATE implant_systems SET manufacturer_key = :manufacturer, name_key = :name "
                             "WHERE id = :id"),
                     [{"id": id_, "manufacturer": key(manufacturer), "name": key(name)}
                      for id_, manufacturer, name in systems])
    op.alter_column("implant_systems", "manufacturer_key", nullable=False)
    op.alter_column("implant_systems", "name_key", nullable=False)
    groups = bind.execute(sa.text(LOOKALIKES)).scalars().all()
    if groups:
        for group in groups:
            log.warning("look-alike catalog systems (same manufacturer + name but for letter case, accents or "
                        "spaces): %s", group)
        log.warning("index %s NOT created: rename or merge the look-alikes above, then create it "
                    "(docs/operations.md, 'Look-alike catalog systems')", INDEX)
        return
    op.execute(CREATE)


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.drop_column("implant_systems", "name_key")
    op.drop_column("implant_systems", "manufacturer_key")
    importlib.import_module("raiox.migrations.versions.0022_system_name_key").upgrade()  # its index, look-alikes aside
