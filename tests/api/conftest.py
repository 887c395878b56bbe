"""API test fixtures: a bearer token and a small demo catalog inside the test transaction."""

import pytest


@pytest.fixture(scope="session")
def reference_pngs() -> dict[str, list[bytes]]:
    from raiox.synth import demo_catalog, render_reference, to_png

    systems = {s.id: s for s in demo_catalog()}
    return {sid: [to_png(render_reference(systems[sid].spec, seed=seed)) for seed in (0, 1)]
            for sid in ("demo-004", "demo-005")}


@pytest.fixture
async def auth(session) -> dict[str, str]:
    from raiox.kit.tokens import create_token

    return {"Authorization": f"Bearer {await create_token(session, 'api-test')}"}


@pytest.fixture
async def catalog(session, reference_pngs):
    """demo-004 and demo-005 with two references each, embedded with the current model."""
    from raiox.catalog.service import Importer
    from raiox.catalog.sources import ImportItem
    from raiox.kit.storage import get_storage
    from raiox.vision import get_embedder

    items = [ImportItem(sid, "Synthetica", sid.upper(), f"{sid}/{i}.png", (lambda d=data: d), {"connection": "hex"})
             for sid, pngs in reference_pngs.items() for i, data in enumerate(pngs)]
    importer = Importer(get_storage(), get_embedder())
    await importer.import_batch(session, items)
    assert importer.report.added == 4, importer.report
    return importer
