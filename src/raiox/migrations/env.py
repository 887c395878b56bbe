"""Alembic environment: runs on the connection given by `raiox.kit.migrate` (or the configured DB)."""

from alembic import context
from sqlalchemy import text

from raiox.models import Base

target_metadata = Base.metadata
LOCK_KEY = 7_302_119  # serialises concurrent `raiox db upgrade` runs


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (name or "").startswith("procrastinate")


def run_migrations(connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    context.configure(
        connection=connection, target_metadata=target_metadata, compare_type=True, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    from sqlalchemy import create_engine

    from raiox.kit.db import libpq_url

    url = libpq_url().replace("postgresql://", "postgresql+psycopg://", 1)
    with create_engine(url, hide_parameters=True).begin() as conn:
        run_migrations(conn)
