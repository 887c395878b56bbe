"""The schema comes from the real migrations and `db upgrade` is idempotent."""

from sqlalchemy import create_engine, text

from raiox.kit import migrate


async def test_upgrade_is_idempotent_and_at_head(database_url):
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        migrate.upgrade(conn)  # second run: nothing to do, no error
        assert migrate.current_heads(conn) == {"0001"} or len(migrate.current_heads(conn)) == 1
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname='vector'")).scalar_one()
    engine.dispose()
    assert {"cases", "case_images", "fixtures", "implant_systems", "reference_embeddings", "procrastinate_jobs"} <= tables
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 5)


async def test_session_rolls_back_between_tests(session):
    from raiox.models import ImplantSystem

    session.add(ImplantSystem(id="rollback-check", manufacturer="Test", name="Rollback"))
    await session.commit()  # a savepoint inside the test transaction
    assert await session.get(ImplantSystem, "rollback-check") is not None


async def test_previous_test_left_nothing(session):
    from raiox.models import ImplantSystem

    assert await session.get(ImplantSystem, "rollback-check") is None


async def test_healthz_and_readyz_report_database(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    body = (await client.get("/readyz")).json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"
