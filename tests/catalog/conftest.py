"""Catalog test fixtures: a few demo renders (PNG bytes) and a CLI runner on the real `raiox` app."""

import pytest

DEMO_IDS = ["demo-001", "demo-002", "demo-003"]


@pytest.fixture(scope="session")
def demo_pngs() -> dict[str, list[bytes]]:
    """The first two clean reference renders (seed k at the line's k-th size) of three demo systems."""
    from raiox.synth import demo_catalog, line_size, render_reference, to_png

    systems = {s.id: s for s in demo_catalog()}
    return {sid: [to_png(render_reference(line_size(systems[sid], seed), seed=seed)) for seed in (0, 1)]
            for sid in DEMO_IDS}


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from raiox.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result

    return invoke


@pytest.fixture
def use_embedder(monkeypatch):
    """Switch RAIOX_EMBEDDER for the rest of the test (settings cache cleared both ways)."""
    from raiox.kit.settings import get_settings

    def switch(spec: str):
        monkeypatch.setenv("RAIOX_EMBEDDER", spec)
        get_settings.cache_clear()
        from raiox.vision import get_embedder

        return get_embedder()

    yield switch
    monkeypatch.undo()
    get_settings.cache_clear()
