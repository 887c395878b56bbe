"""The schema comes from the real migrations and `db upgrade` is idempotent."""

from pathlib import Path

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
    assert {"cases", "case_images", "fixtures", "implant_systems", "reference_embeddings",
            "procrastinate_jobs"} <= tables
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


async def test_openapi_documents_readyz_answering_503_with_its_checks(client):
    spec = (await client.get("/openapi.json")).json()
    answers = spec["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(answers) and "Not ready" in answers["503"]["description"]
    for code in ("200", "503"):  # the checks' body both ways, not the API's error body
        assert answers[code]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Readiness"
    readiness = spec["components"]["schemas"]["Readiness"]
    assert set(readiness["properties"]) == {"status", "checks", "warnings"}
    assert "empty" in readiness["description"] and "missing_vectors" in readiness["description"]
    assert "empty" in answers["200"]["description"]
    assert readiness["properties"]["status"]["enum"] == ["ready", "not_ready"]


async def test_readyz_fails_when_a_configured_reader_model_cannot_load(client, tmp_path, monkeypatch):
    """A reader file ONNX Runtime cannot open would fail every case's analysis: not ready (a deploy rolls back)."""
    assert (await client.get("/readyz")).json()["checks"]["model"] == "ok"
    broken = tmp_path / "features.onnx"
    broken.write_bytes(b"not an onnx graph")
    for env in ("RAIOX_FEATURE_MODEL", "RAIOX_CONNECTION_MODEL", "RAIOX_ENDS_MODEL"):
        with monkeypatch.context() as patch:
            patch.setenv(env, str(broken))
            response = await client.get("/readyz")
            assert response.status_code == 503 and response.json()["checks"]["model"].startswith("error:")
    assert (await client.get("/readyz")).json()["checks"]["model"] == "ok"  # switched back: ready again


async def test_readyz_fails_when_a_configured_reader_would_read_nothing(client, tmp_path, monkeypatch):
    """A configured reader file that is not there, or a feature reader fitted on another embedder's vectors, would
    silently drop the re-rank from every answer: not ready, and the check says which setting and why."""
    from raiox.vision import features

    other = Path(features.__file__).parent / "models" / features.SHIPPED["raiox-v11"]  # reads raiox-v11's vectors
    cases = (("RAIOX_FEATURE_MODEL", str(tmp_path / "gone.onnx"), "no such file"),
             ("RAIOX_CONNECTION_MODEL", str(tmp_path / "gone.onnx"), "no such file"),
             ("RAIOX_ENDS_MODEL", str(tmp_path / "gone.onnx"), "no such file"),
             ("RAIOX_FEATURE_MODEL", str(other), "reads the vectors of `raiox-v11`"))
    for env, value, why in cases:
        with monkeypatch.context() as patch:
            patch.setenv(env, value)
            response = await client.get("/readyz")
            assert response.status_code == 503, (env, value)
            assert why in response.json()["checks"]["model"] and env in response.json()["checks"]["model"]
    with monkeypatch.context() as patch:  # switched off on purpose: ready
        patch.setenv("RAIOX_FEATURE_MODEL", "none")
        assert (await client.get("/readyz")).json()["checks"]["model"] == "ok"


async def test_readyz_reports_the_catalog_as_it_is_and_fails_only_for_another_models_vectors(client, session):
    """An empty catalog, or reference images without vectors, cannot answer /identify (503 catalog_missing): /readyz
    says so (`empty`, `missing_vectors`, and why in `warnings`) but stays ready (200: a first deploy, whose catalog is
    loaded afterwards, must pass, and the webhook works without a catalog). A model switched without `raiox catalog
    reindex` (vectors, none of the configured model) is not ready: a deploy then rolls back. The configured model's
    vectors: ok, no warning."""
    import uuid

    import numpy as np

    from raiox.catalog import repository
    from raiox.models import ReferenceImage
    from raiox.vision import get_embedder

    async def reference(system_id: str, model_id: str | None) -> None:
        await repository.upsert_system(session, system_id, "Test Co", system_id, {})
        image = ReferenceImage(id=uuid.uuid4(), system_id=system_id, storage_key=f"k/{system_id}", source="test",
                               sha256=uuid.uuid4().hex * 2)
        session.add(image)
        await session.flush()
        if model_id:
            vector = np.random.default_rng(0).normal(size=(1, 512)).astype(np.float32)
            await repository.put_embeddings(session, [(image.id, system_id)], vector / np.linalg.norm(vector),
                                            model_id)

    model_id = get_embedder().model_id
    empty = await client.get("/readyz")  # nothing loaded yet
    assert empty.status_code == 200 and empty.json()["status"] == "ready"
    assert empty.json()["checks"]["catalog"] == "empty"
    assert "catalog_missing" in empty.json()["warnings"]["catalog"] and "raiox catalog" in empty.json()["warnings"][
        "catalog"]
    await reference("unembedded-system", None)
    unembedded = await client.get("/readyz")
    assert unembedded.status_code == 200 and unembedded.json()["checks"]["catalog"] == "missing_vectors"
    assert model_id in unembedded.json()["warnings"]["catalog"]
    await reference("old-model-system", "raiox-retired")
    response = await client.get("/readyz")
    assert response.status_code == 503 and response.json()["status"] == "not_ready"
    assert "reindex" in response.json()["checks"]["catalog"] and response.json()["warnings"] == {}
    await reference("current-system", model_id)
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["catalog"] == "ok" and ready["warnings"] == {} and ready["status"] == "ready"


async def test_readyz_asks_the_embedder_once_per_probe_even_with_a_warning(client, monkeypatch):
    """An empty catalog's warning names the model: /readyz asked the embedder for its id a second time to word it,
    beside the catalog probe's own ask. Now the probe words its warning with the id it has: one ask for the model
    probe, one for the catalog's, warning or not."""
    import raiox.vision

    real, asked = raiox.vision.get_embedder, []
    monkeypatch.setattr(raiox.vision, "get_embedder", lambda: asked.append(1) or real())
    body = (await client.get("/readyz")).json()
    assert body["checks"]["catalog"] == "empty" and "catalog" in body["warnings"]
    assert set(body) == {"status", "checks", "warnings"} and body["status"] == "ready"
    assert len(asked) == 2, asked


async def test_readyz_answers_503_when_the_catalog_probe_fails(monkeypatch):
    """A catalog probe that fails in the database (here a division by zero) is reported, and the request's own
    session still closes cleanly: 503 with the error, not a 500."""
    import httpx
    from sqlalchemy import text as sql

    from raiox.app import create_app
    from raiox.catalog import repository

    async def broken(session, model_id):
        await session.execute(sql("SELECT 1 / 0"))

    monkeypatch.setattr(repository, "has_embeddings", broken)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert "DivisionByZero" in response.json()["checks"]["catalog"]
    assert response.json()["checks"]["database"] == "ok"
