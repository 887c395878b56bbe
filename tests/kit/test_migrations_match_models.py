"""The schema the Alembic migrations build is the one the models declare (a column or table added to one and not
the other fails here, not in production)."""

# built by migrations on purpose and not declared on the models: the queue's tables (procrastinate's own schema),
# the vector index per model (raiox.catalog.vector_index) and two query indexes
NOT_MODELLED = ("procrastinate_", "idx_procrastinate_", "ix_refemb_hnsw_", "ix_cases_status_created",
                "ix_reference_embeddings_model_id")
# expression indexes: Alembic cannot compare their text (PostgreSQL rewrites it); compared by PostgreSQL below
EXPRESSIONS = ("uq_implant_systems_name_key",)


def _name(diff) -> str:
    obj = diff[1] if isinstance(diff, tuple) else diff[0][1]
    return str(getattr(obj, "name", None) or getattr(getattr(obj, "table", None), "name", "") or obj)


async def test_migrations_build_what_the_models_declare(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from raiox.models import Base

    async with engine.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    unexpected = [d for d in diffs if not _name(d).startswith(NOT_MODELLED + EXPRESSIONS)]
    assert unexpected == [], unexpected
    assert len(diffs) > len(unexpected)  # the comparison did see the database (procrastinate's tables at least)


async def test_expression_indexes_are_the_ones_the_models_declare(engine):
    """The migration's index on an expression is the model's: the model's, built under another name, reads back
    from PostgreSQL the same (the migration writes its SQL by hand)."""
    from sqlalchemy import text
    from sqlalchemy.schema import CreateIndex

    from raiox.models import Base

    async with engine.connect() as conn:
        for table in Base.metadata.tables.values():
            for index in (i for i in table.indexes if i.name in EXPRESSIONS):
                built = await conn.scalar(text("SELECT pg_get_indexdef(CAST(:name AS regclass))"), {"name": index.name})
                assert built, f"{index.name} missing"
                ddl = str(CreateIndex(index).compile(conn.sync_connection))
                await conn.execute(text(ddl.replace(index.name, "probe_index", 1)))
                probe = await conn.scalar(text("SELECT pg_get_indexdef('probe_index'::regclass)"))
                await conn.rollback()
                assert probe.replace("probe_index", index.name) == built
