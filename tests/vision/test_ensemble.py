"""`raiox vision ensemble-embedders`: several embedding models served as one ONNX file."""

import numpy as np
import pytest
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision.embedders import OnnxEmbedder, crop_size, l2_normalise, shipped_model
from raiox.vision.ensemble import shrink_operator


def _clean(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


def test_shrink_operator_keeps_smooth_content_and_brightness():
    op = shrink_operator(192, 256)
    assert op.shape == (192, 256) and np.allclose(op.sum(1), 1, atol=1e-6)
    ramp = np.linspace(0, 1, 256, dtype=np.float32)
    centres = (np.arange(192) + 0.5) * 256 / 192 - 0.5  # where each output pixel sits on the input axis
    inner = slice(4, -4)  # the blur is renormalised at the borders
    assert np.allclose((op @ ramp)[inner], np.interp(centres, np.arange(256), ramp)[inner], atol=1e-4)
    assert np.allclose(shrink_operator(96, 96), np.eye(96))


@pytest.fixture(scope="module")
def tall_model(tmp_path_factory):
    """raiox-v10's weights exported at 256 x 128 (a member whose crop is larger than raiox-v10's)."""
    from raiox.vision.net import from_onnx
    from raiox.vision.train import export

    path = tmp_path_factory.mktemp("tall") / "tall.onnx"
    return export(from_onnx(shipped_model("raiox-v10")).eval(), path, (256, 128))


def test_an_ensemble_embeds_the_normalised_sum_of_its_members(tmp_path, tall_model):
    out = tmp_path / "ens.onnx"
    result = CliRunner().invoke(app, ["vision", "ensemble-embedders", str(shipped_model("raiox-v10")),
                                      str(tall_model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ensemble, small, tall = (OnnxEmbedder(out, "ens"), OnnxEmbedder(shipped_model("raiox-v10"), "v10"),
                             OnnxEmbedder(tall_model, "tall"))
    assert crop_size(ensemble) == (256, 128)  # the largest member's crop; the other's is cut inside the graph
    rng = np.random.default_rng(0)
    crops = [rng.random((256, 128), dtype=np.float32) for _ in range(3)]
    rows, cols = shrink_operator(192, 256), shrink_operator(96, 128)
    want = l2_normalise(small.embed([rows @ c @ cols.T for c in crops]) + tall.embed(crops))
    got = ensemble.embed(crops)
    assert got.shape == (3, 512) and np.abs(got - want).max() < 1e-5
    assert np.abs(got - tall.embed(crops)).max() > 1e-3  # both members count


def test_a_member_comes_back_out_of_its_ensemble(tmp_path, tall_model):
    """`raiox vision ensemble-member`: each member alone, as it embeds inside the file; the bigger one's weights
    load for a fine-tune (`train --init-from`)."""
    from raiox.vision.ensemble import ensemble
    from raiox.vision.net import from_onnx

    ens = ensemble([shipped_model("raiox-v10"), tall_model], tmp_path / "ens.onnx")
    for index in (0, 1):
        result = CliRunner().invoke(app, ["vision", "ensemble-member", str(ens), "--index", str(index),
                                          "--out", str(tmp_path / f"m{index}.onnx")])
        assert result.exit_code == 0, result.output
    small, tall = OnnxEmbedder(shipped_model("raiox-v10"), "v10"), OnnxEmbedder(tall_model, "tall")
    first, second = OnnxEmbedder(tmp_path / "m0.onnx", "m0"), OnnxEmbedder(tmp_path / "m1.onnx", "m1")
    assert crop_size(first) == crop_size(second) == (256, 128)  # the ensemble's crop; member 0 shrinks it inside
    rng = np.random.default_rng(1)
    crops = [rng.random((256, 128), dtype=np.float32) for _ in range(2)]
    rows, cols = shrink_operator(192, 256), shrink_operator(96, 128)
    assert np.abs(first.embed(crops) - small.embed([rows @ c @ cols.T for c in crops])).max() < 1e-5
    assert np.abs(second.embed(crops) - tall.embed(crops)).max() < 1e-6
    net = from_onnx(tmp_path / "m1.onnx")  # the network the fine-tune starts from: the tall member's weights
    assert net.widths == from_onnx(tall_model).widths
    result = CliRunner().invoke(app, ["vision", "ensemble-member", str(ens), "--index", "2", "--out",
                                      str(tmp_path / "m2.onnx")])
    assert result.exit_code != 0 and "no member 2 (an ensemble of 2 members)" in _clean(result.output)
    result = CliRunner().invoke(app, ["vision", "ensemble-member", str(tall_model), "--index", "0", "--out",
                                      str(tmp_path / "m3.onnx")])
    assert result.exit_code != 0 and "not an ensemble file" in _clean(result.output)
    assert not (tmp_path / "m2.onnx").exists() and not (tmp_path / "m3.onnx").exists()


def test_members_of_another_aspect_or_a_lone_model_are_refused(tmp_path):
    v10, v1 = str(shipped_model("raiox-v10")), str(shipped_model("raiox-v1"))  # 192 x 96 and 192 x 64
    result = CliRunner().invoke(app, ["vision", "ensemble-embedders", v10, v1, "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code != 0 and "one crop aspect" in _clean(result.output)
    result = CliRunner().invoke(app, ["vision", "ensemble-embedders", v10, "--out", str(tmp_path / "y.onnx")])
    assert result.exit_code != 0 and "two or more models" in _clean(result.output)
    rgb = str(_three_channel_model(tmp_path / "rgb.onnx"))
    result = CliRunner().invoke(app, ["vision", "ensemble-embedders", v10, rgb, "--out", str(tmp_path / "z.onnx")])
    assert result.exit_code != 0 and "not a one-channel crop model" in _clean(result.output)
    assert not list(tmp_path.glob("[xyz].onnx"))


def _three_channel_model(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["out"])],
        "rgb", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 192, 96])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
