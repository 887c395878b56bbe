"""Fixtures shared by intake and cases tests (imported by their conftest.py files)."""

import os

import pytest

from fakes.jotform import FORM_ID, FakeJotform




@pytest.fixture
def settings_env(database_url):
    """set(**env): override RAIOX_* settings for one test (restored afterwards)."""
    from raiox.kit import settings

    saved: dict[str, str | None] = {}

    def _set(**values: str) -> None:
        for key, value in values.items():
            name = "RAIOX_" + key.upper()
            saved.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        settings.get_settings.cache_clear()

    yield _set
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    settings.get_settings.cache_clear()


@pytest.fixture
def jotform(settings_env):
    """A running fake Jotform (API + upload host); settings point at it."""
    with FakeJotform(api_key="test-jotform-key") as fake:
        settings_env(jotform_api_url=fake.url, jotform_upload_hosts=fake.url, jotform_form_id=FORM_ID,
                     retry_backoff_s="0.01", download_retries="2", jotform_retries="2")
        yield fake


@pytest.fixture(scope="session")
def scene_pngs():
    """Two synthetic radiographs (PNG bytes) with implants of the first demo systems (rendered once)."""
    from raiox.synth import demo_catalog, render_scene, to_png

    systems = demo_catalog()
    return [to_png(render_scene([systems[i].spec], seed=i).image) for i in (0, 3)]


@pytest.fixture(scope="session")
def reference_vectors():
    """(system, embedding) for a handful of demo systems, embedded once with the configured embedder."""
    from raiox.synth import demo_catalog, render_reference
    from raiox.vision import embed_reference, get_embedder

    embedder = get_embedder()
    return [(s, embed_reference(render_reference(s.spec), embedder)) for s in demo_catalog()[:6]]


@pytest.fixture
async def catalog(committed, reference_vectors):
    """A small committed catalog (systems + reference images + embeddings of the current model)."""
    import uuid

    from raiox.kit.db import session_scope
    from raiox.models import ImplantSystem, ReferenceEmbedding, ReferenceImage
    from raiox.vision import get_embedder

    model_id = get_embedder().model_id
    async with session_scope() as session:
        for system, vector in reference_vectors:
            session.add(ImplantSystem(id=system.id, manufacturer=system.manufacturer, name=system.name))
            await session.flush()
            image = ReferenceImage(id=uuid.uuid4(), system_id=system.id, storage_key=f"ref/{system.id}",
                                   sha256=uuid.uuid4().hex, source="demo")
            session.add(image)
            await session.flush()
            session.add(ReferenceEmbedding(reference_image_id=image.id, system_id=system.id, model_id=model_id,
                                           embedding=vector))
    return [s.id for s, _ in reference_vectors]


@pytest.fixture
def run_worker():
    """await run_worker(): a procrastinate worker in this process until no job is ready (real retries)."""
    from raiox.kit import jobs

    async def _run() -> None:
        async with jobs.app.open_async():
            await jobs.app.run_worker_async(wait=False, install_signal_handlers=False, concurrency=1)

    return _run


@pytest.fixture
async def api(committed):
    """An httpx client on the app with its real sessions (each request commits), for committed tests."""
    import httpx

    from raiox.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://raiox") as http:
        yield http


@pytest.fixture
async def bearer(committed):
    """Authorization header with a fresh API token (committed)."""
    from raiox.kit.tokens import create_token
    from raiox.kit.db import session_scope

    async with session_scope() as session:
        token = await create_token(session, "tests")
    return {"Authorization": f"Bearer {token}"}
