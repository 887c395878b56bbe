"""implant_systems: manufacturer + name unique letter case, accents and spaces aside

"Neodent / grand  morse" and "Neodent / Grand Morse" were two systems (only the exact pair was unique): references
split between look-alikes. A unique index on the normalised pair (`raiox.models.catalog.name_key`: accents
stripped, whitespace collapsed and trimmed, lower case) makes the database refuse a look-alike.

Existing look-alikes are not changed here (which one to keep is an operator's choice): when there are any, the
index is not created, each group is logged as a warning (ids and names), and the runbook (docs/operations.md,
"Look-alike catalog systems") says how to rename or merge them and create the index afterwards. The panel and the
import refuse new look-alikes either way.

Revision ID: 0022
Revises: 0021
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
BACKSLASH = "\\"
SPACES = r"[\s\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]+"


def key(column: str) -> str:
    return (f"lower(btrim(regexp_replace(regexp_replace(normalize({column}, NFD), E'[\\u0300-\\u036f]', '', 'g'), "
            f"E'{SPACES.replace(BACKSLASH + 's', BACKSLASH * 2 + 's')}', ' ', 'g')))")


# kept in step with raiox.models.catalog.name_key (tests/kit/test_migrations_match_models.py compares them).
# Superseded by 0023: this lower()-based key follows the database's LC_CTYPE; 0023 stores name_key (computed in
# Python) in manufacturer_key / name_key and rebuilds the index on them. Left as it was: 0023's downgrade runs it.
CREATE = (f"CREATE UNIQUE INDEX IF NOT EXISTS uq_implant_systems_name_key ON implant_systems "
          f"({key('manufacturer')}, {key('name')})")
LOOKALIKES = (f"SELECT string_agg(id || ' (' || manufacturer || ' / ' || name || ')', ', ' ORDER BY id) "
              f"FROM implant_systems GROUP BY {key('manufacturer')}, {key('name')} HAVING count(*) > 1")


def upgrade() -> None:
    groups = op.get_bind().execute(sa.text(LOOKALIKES)).scalars().all()
    if groups:
        for group in groups:
            log.warning("look-alike catalog systems (same manufacturer + name but for letter case, accents or "
                        "spaces): %s", group)
        log.warning("index uq_implant_systems_name_key NOT created: rename or merge the look-alikes above, then "
                    "create it (docs/operations.md, 'Look-alike catalog systems')")
        return
    op.execute(CREATE)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS uq_implant_systems_name_key")
