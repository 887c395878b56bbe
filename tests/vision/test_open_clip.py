"""The `open_clip:MODEL/TAG` backend and `raiox vision export-onnx`, untrained (TAG `none`).

No weights can be downloaded here, so the smallest built-in open_clip model (ViT-S-32, image tower
22.6 M parameters) is built with ``pretrained=None``: what is checked is our code path (gray crop to
the model's input, mean/std, L2 norm, the ONNX graph), not retrieval quality.
"""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import canonical_crop, get_embedder
from raiox.vision import embedders

from .standin import Fixture, render

MODEL = "ViT-S-32"


@pytest.fixture(scope="module")
def crops():
    scene = render([Fixture(250, 150, 10, abutment=True), Fixture(560, 250, -80, length=180, radius=36)], seed=3)
    return [canonical_crop(scene.image, fx.box()) for fx in scene.fixtures] + [np.zeros((192, 64), np.float32)]


@pytest.fixture(scope="module")
def torch_embedder():
    embedders._build.cache_clear()
    torch.manual_seed(0)  # the untrained weights: the export below draws the same ones
    return get_embedder(f"open_clip:{MODEL}/none")


def test_open_clip_backend_embeds_canonical_crops(torch_embedder, crops):
    assert torch_embedder.model_id == f"open_clip:{MODEL}/none"
    assert torch_embedder.dim == 384 and (torch_embedder.height, torch_embedder.width) == (224, 224)
    vectors = torch_embedder.embed(crops)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
    np.testing.assert_allclose(torch_embedder.embed(crops), vectors, atol=1e-6)
    assert get_embedder(f"open_clip:{MODEL}/none") is torch_embedder


def test_export_onnx_matches_torch(torch_embedder, crops, tmp_path):
    out = tmp_path / "vit-s-32.onnx"
    torch.manual_seed(0)
    result = CliRunner().invoke(app, ["vision", "export-onnx", f"{MODEL}/none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    onnx = get_embedder(f"onnx:{out}")
    assert onnx.model_id.startswith("onnx:vit-s-32.onnx#") and onnx.model_id != torch_embedder.model_id
    assert (onnx.channels, onnx.height, onnx.width, onnx.dim) == (1, 224, 224, 384)
    np.testing.assert_allclose(onnx.embed(crops), torch_embedder.embed(crops), atol=1e-4)


def test_unknown_open_clip_model_is_refused():
    with pytest.raises(RuntimeError, match="not-a-model"):
        get_embedder("open_clip:not-a-model/none")


def test_export_of_an_unknown_open_clip_model_is_refused_in_a_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["vision", "export-onnx", "not-a-model/none", "--out", str(tmp_path / "x.onnx")])
    said = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for MODEL: unknown open_clip model 'not-a-model'" in said and "ViT-S-32" not in said
    assert not (tmp_path / "x.onnx").exists()
