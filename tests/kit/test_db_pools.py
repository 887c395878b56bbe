"""Each process's connection pools are sized by the settings the deploy bounds (RAIOX_DB_POOL_SIZE,
RAIOX_DB_MAX_OVERFLOW, RAIOX_DB_JOB_POOL_SIZE) to fit PostgreSQL's max_connections: tests/ops/test_db_connections.py
counts on exactly these pools, so a new one, or one that ignores its setting, must show up here."""

from raiox.kit import jobs


async def test_the_job_pool_is_sized_by_the_setting_when_the_app_opens(database_url, configure):
    configure(DB_JOB_POOL_SIZE="3")
    async with jobs.app.open_async():
        pool = jobs.app.connector.pool
        assert (pool.min_size, pool.max_size) == (1, 3)
        assert (await jobs.app.connector.execute_query_one_async("SELECT 1 AS one"))["one"] == 1
    configure(DB_JOB_POOL_SIZE="5")
    async with jobs.app.open_async():  # a later open reads the setting again
        assert jobs.app.connector.pool.max_size == 5


async def test_the_sqlalchemy_and_webhook_pools_follow_the_pool_settings(database_url, configure):
    from raiox.intake import fastpool
    from raiox.kit.db import create_engine, sqlalchemy_url

    configure(DB_POOL_SIZE="4", DB_MAX_OVERFLOW="2")
    engine = create_engine(sqlalchemy_url())
    try:
        assert (engine.pool.size(), engine.pool._max_overflow) == (4, 2)
    finally:
        await engine.dispose()
    await fastpool.close()  # a pool another test opened keeps its size: start afresh
    try:
        assert (await fastpool._get_pool()).max_size == 4
    finally:
        await fastpool.close()


def test_the_default_job_pool_is_the_former_fixed_size(monkeypatch):
    from raiox.kit.settings import Settings

    monkeypatch.delenv("RAIOX_DB_JOB_POOL_SIZE", raising=False)
    assert Settings(_env_file=None).db_job_pool_size == 10
