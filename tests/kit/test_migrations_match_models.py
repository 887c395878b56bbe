"""The schema the Alembic migrations build is the one the models declare (a column or table added to one and not
the other fails here, not in production)."""

# built by migrations on purpose and not declared on the models: the queue's tables (procrastinate's own schema),
# the vector index per model (raiox.catalog.vector_index) and two query indexes
NOT_MODELLED = ("procrastinate_", "idx_procrastinate_", "ix_refemb_hnsw_", "ix_cases_status_created",
                "ix_reference_embeddings_model_id")


def _name(diff) -> str:
    obj = diff[1] if isinstance(diff, tuple) else diff[0][1]
    return str(getattr(obj, "name", None) or getattr(getattr(obj, "table", None), "name", "") or obj)


async def test_migrations_build_what_the_models_declare(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from raiox.models import Base

    async with engine.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    unexpected = [d for d in diffs if not _name(d).startswith(NOT_MODELLED)]
    assert unexpected == [], unexpected
    assert len(diffs) > len(unexpected)  # the comparison did see the database (procrastinate's tables at least)

