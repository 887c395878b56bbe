"""The connection reader (`raiox.vision.connection`): classes from specs, the platform zoom, the re-rank
bonus, training on a few renders, and what the shipped model reads on demo systems it never saw."""

import json

import numpy as np
import pytest

from raiox.vision import connection, connectionnet
from raiox.vision.datagen import shard_specs
from raiox.vision.ranking import RERANK_POOL, rank


def _render(spec: dict, seed: int, **cond):
    from raiox.synth import render_scene

    return render_scene([spec], seed=seed, conditions={"size": (600, 800), "angulation": 3.0, **cond})


def test_every_demo_system_has_a_connection_class_and_unknown_ones_have_none():
    from raiox.synth import demo_catalog

    classes = [connection.spec_class(s.spec) for s in demo_catalog()]
    assert None not in classes and set(classes) == set(range(len(connection.CLASSES)))
    assert connection.spec_class({"connection": {"kind": "conical", "cone_angle_deg": 15.0}}) is None
    assert connection.spec_class({"connection": {"kind": "conical"}}) is None
    assert connection.spec_class(None) is None and connection.spec_class({}) is None
    assert connection.CLASSES[connection.spec_class({"connection": {"kind": "tri_channel"}})] == "tri_channel"
    assert connection.CLASSES[
        connection.spec_class({"connection": {"kind": "conical", "cone_angle_deg": 11.5}})] == "conical_11.5"


def test_platform_zoom_follows_the_box_not_the_image_orientation():
    from raiox.synth import demo_catalog

    spec = next(s.spec for s in demo_catalog() if s.spec["connection"]["kind"] == "conical")
    sc = _render(spec, 3, prosthesis="none")
    box = np.asarray(sc.boxes[0], np.float32)
    zoom = connection.platform_zoom(sc.image, box)
    assert zoom.shape == (connection.ZOOM.h, connection.ZOOM.w) and zoom.dtype == np.float32
    assert 0 <= zoom.min() and zoom.max() <= 1
    h, w = sc.image.shape
    turned = np.rot90(sc.image).copy()  # 90 degrees counter-clockwise: (x, y) -> (y, w - 1 - x)
    turned_box = np.stack([box[:, 1], w - 1 - box[:, 0]], 1)
    again = connection.platform_zoom(turned, turned_box)
    assert np.abs(again - zoom).mean() < 0.03
    apex_first = connection.platform_zoom(sc.image, box[[2, 3, 0, 1]])  # the other end is another picture
    assert np.abs(apex_first - zoom).mean() > 3 * np.abs(again - zoom).mean()
    finer = connection.Zoom(160, 112, 1.05, 0.25)  # another model's zoom
    assert connection.platform_zoom(sc.image, box, finer).shape == (160, 112)


def test_bonus_rewards_the_read_class_and_treats_unknown_specs_as_average():
    probs = np.full(len(connection.CLASSES), 0.01, np.float32)
    probs[4] = 0.92
    out = connection.bonus(probs, [4, 0, None, 4])
    assert out[0] == out[3] == pytest.approx(connection.WEIGHT * np.log(0.92 + connection.FLOOR))
    assert out[1] == pytest.approx(connection.WEIGHT * np.log(0.01 + connection.FLOOR))
    assert out[2] == pytest.approx(np.mean([out[0], out[1], out[3]]))
    assert not connection.bonus(None, [4, 0]).any() and not connection.bonus(probs, [None, None]).any()


def test_rank_reorders_close_siblings_within_the_pool_only():
    n = RERANK_POOL + 3
    gallery = np.eye(n, dtype=np.float32)
    labels = np.arange(n)
    query = np.zeros((2, n), np.float32)
    query[:, 0], query[:, 1] = 0.60, 0.59  # system 1 a close sibling of 0
    query[:, n - 1] = 0.001  # outside the pool, whatever its class
    query[:, 2:n - 1] = np.linspace(0.5, 0.002, n - 3)
    classes = [0, 5] + [1] * (n - 3) + [5]
    probs = np.full(len(connection.CLASSES), 0.001, np.float32)
    probs[5] = 0.99
    order = rank(gallery, labels, query, n, references=1, connection=[probs, None], classes=classes)
    assert list(order[0, :2]) == [1, 0] and list(order[1, :2]) == [0, 1]  # the second query has no read
    assert order[0, -1] == n - 1  # not pulled in from beyond the pool


def test_without_a_model_nothing_is_read(monkeypatch):
    from raiox.vision import analyze, get_embedder
    from raiox.synth import demo_catalog

    sc = _render(demo_catalog()[0].spec, 5)
    monkeypatch.setenv(connection.MODEL_ENV, "none")
    assert connection.model_path() is None
    assert connection.read(sc.image, [np.asarray(sc.boxes[0])]) == [None]
    assert all(f.connection is None for f in analyze(sc.image, get_embedder()))


def test_train_connection_renders_resumable_shards_and_exports_a_working_model(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from raiox.cli import app

    out = tmp_path / "conn"
    args = ["vision", "train-connection", "--out", str(out), "--renders", "6", "--steps", "4", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (shard,) = sorted((out / "zooms").glob("zooms-*.npz"))
    data = np.load(shard)
    assert data["zooms"].dtype == np.uint8 and data["zooms"].shape[1:] == (connection.ZOOM.h, connection.ZOOM.w)
    assert len(data["zooms"]) == 2 * 6  # the true box and a located-like one per render
    assert set(data["classes"].tolist()) <= set(range(-1, len(connection.CLASSES)))
    model = out / connectionnet.TRAINED_FILE
    assert "12 zooms" in result.output and model.exists()
    assert connection.zoom_of(model) == connection.ZOOM  # the file says which zoom it reads
    import onnx

    other = connection.Zoom(64, 48, 1.2, 0.2)
    tagged = onnx.load(str(model))
    del tagged.metadata_props[:]
    onnx.save(tagged, str(tmp_path / "older.onnx"))  # a file from before the metadata, like connection-v1.onnx
    assert connection.zoom_of(tmp_path / "older.onnx") == connection.ZOOM
    for key, value in connection.zoom_metadata(other).items():
        tagged.metadata_props.add(key=key, value=value)
    onnx.save(tagged, str(tmp_path / "other.onnx"))
    assert connection.zoom_of(tmp_path / "other.onnx") == other
    before = shard.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)  # rendered and trained already: nothing is redone
    assert again.exit_code == 0 and shard.stat().st_mtime_ns == before
    probs = connection.predict(data["zooms"][:3] / 255.0, model)
    assert probs.shape == (3, len(connection.CLASSES)) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.skipif(connection.model_path() is None, reason=f"{connection.MODEL_FILE} is not shipped")
def test_shipped_model_reads_open_connections_of_demo_systems_it_never_saw():
    """Bare fixtures of demo systems (never a training design): external hex vs any internal connection is
    read far above chance, and the analysis carries the read."""
    from raiox.synth import demo_catalog
    from raiox.vision import analyze, get_embedder

    systems = demo_catalog()
    picks = [s for s in systems if s.spec["connection"]["kind"] == "external_hex"][:6]
    picks += [s for s in systems if s.spec["connection"]["kind"] == "conical"][:6]
    hits = []
    for i, s in enumerate(picks):
        sc = _render(s.spec, 50 + i, prosthesis="none")
        (probs,) = connection.read(sc.image, [np.asarray(sc.boxes[0])])
        hex_p = probs[0]
        hits.append((hex_p > 0.5) == (s.spec["connection"]["kind"] == "external_hex"))
    assert np.mean(hits) >= 0.75
    image = _render(picks[0].spec, 60).image
    fixtures = analyze(image, get_embedder())
    assert fixtures and fixtures[0].connection.shape == (len(connection.CLASSES),)
    assert all(f.connection is None for f in analyze(image, get_embedder(), read_connection=False))  # references


def test_a_model_trained_on_another_zoom_is_read_with_that_zoom(tmp_path):
    pytest.importorskip("torch")
    from raiox.synth import demo_catalog
    from raiox.vision import connectionnet

    small = connection.Zoom(64, 48, 1.2, 0.2)
    assert connectionnet.render_zooms(tmp_path / "zooms", 3, seed=2, zoom=small) == 6
    # physical specs by default (seed 2's first three old draws are all 22 degree cones their bodies cannot hold)
    drawn = [connection.spec_class(s) for s in shard_specs(2, 0, 3, physical=True)[0]]
    assert drawn != [connection.spec_class(s) for s in shard_specs(2, 0, 3)[0]]
    assert np.load(tmp_path / "zooms" / "zooms-000.npz")["classes"].tolist() == np.repeat(drawn, 2).tolist()
    model = connectionnet.train_connection(tmp_path, steps=2, checkpoint_every_s=1e9)
    assert connection.zoom_of(model) == small
    sc = _render(demo_catalog()[3].spec, 8)
    (probs,) = connection.read(sc.image, [np.asarray(sc.boxes[0])], model)  # a 112 x 80 zoom would not fit the net
    assert probs.shape == (len(connection.CLASSES),) and probs.sum() == pytest.approx(1, abs=1e-5)


def test_zooms_made_before_the_spec_rule_resume_the_old_way(tmp_path):
    """connection-v1's zooms (shards, no meta.json) keep the old draws; a new folder records the rule asked for."""
    from raiox.vision.connectionnet import _zoom_rule

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    np.savez(old / "zooms-000.npz", classes=np.zeros(2))
    assert _zoom_rule(old, True) is False and _zoom_rule(old, True) is False  # recorded: stays so
    assert _zoom_rule(new, True) is True and json.loads((new / "meta.json").read_text()) == {"physical": True}
    assert _zoom_rule(new, False) is True  # a folder keeps its rule whatever a later run asks


def _session_probs(path, zooms):
    from raiox.vision.onnxrt import session

    logits = session(str(path)).run(None, {"zoom": zooms})[0]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_an_ensemble_reads_the_mean_of_its_models_probabilities(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from raiox.vision import connectionnet

    shipped = connection.model_path()
    other = onnx.load(str(shipped))  # a second model: the shipped one with its classifier's bias moved
    bias = next(t for t in other.graph.initializer if numpy_helper.to_array(t).shape == (len(connection.CLASSES),))
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + np.linspace(-2, 2, len(connection.CLASSES),
                                                                                       dtype=np.float32), bias.name))
    onnx.save(other, str(tmp_path / "other.onnx"))
    both = connectionnet.ensemble([shipped, tmp_path / "other.onnx"], tmp_path / "both.onnx")
    zooms = np.random.default_rng(0).random((4, 1, connection.ZOOM.h, connection.ZOOM.w), dtype=np.float32)
    a, b = _session_probs(shipped, zooms), _session_probs(tmp_path / "other.onnx", zooms)
    assert not np.allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(_session_probs(both, zooms), (a + b) / 2, atol=1e-5)
    assert connection.zoom_of(both) == connection.ZOOM
    sc = _render(shipped_spec(), 8)
    (probs,) = connection.read(sc.image, [np.asarray(sc.boxes[0])], both)  # the product reads it like one model
    assert probs.shape == (len(connection.CLASSES),) and probs.sum() == pytest.approx(1, abs=1e-5)
    # models of different zooms cannot be averaged
    small = onnx.load(str(shipped))
    small.metadata_props.add(key=connection.ZOOM_KEY, value=json.dumps({"h": 64, "w": 48, "across": 1.2, "above": 0.2}))
    onnx.save(small, str(tmp_path / "small.onnx"))
    with pytest.raises(ValueError, match="one zoom"):
        connectionnet.ensemble([shipped, tmp_path / "small.onnx"], tmp_path / "bad.onnx")


def shipped_spec() -> dict:
    from raiox.synth import demo_catalog

    return demo_catalog()[3].spec


def test_the_ensemble_command(tmp_path):
    pytest.importorskip("onnx")
    from typer.testing import CliRunner

    from raiox.cli import app

    shipped = str(connection.model_path())
    done = CliRunner().invoke(app, ["vision", "ensemble-connection", shipped, shipped, "--out",
                                    str(tmp_path / "e.onnx")])
    assert done.exit_code == 0 and (tmp_path / "e.onnx").exists(), done.output
    zooms = np.random.default_rng(1).random((2, 1, connection.ZOOM.h, connection.ZOOM.w), dtype=np.float32)
    np.testing.assert_allclose(_session_probs(tmp_path / "e.onnx", zooms), _session_probs(shipped, zooms), atol=1e-5)
    one = CliRunner().invoke(app, ["vision", "ensemble-connection", shipped, "--out", str(tmp_path / "one.onnx")])
    assert one.exit_code == 2 and not (tmp_path / "one.onnx").exists()  # a clear usage error, nothing written


def test_a_model_file_onnx_runtime_cannot_load_is_a_config_error_naming_its_setting(tmp_path, monkeypatch):
    """A corrupt reader or embedder file stops with one line naming the file and its setting, not a traceback."""
    from raiox.kit.cli_errors import failure
    from raiox.kit.errors import ConfigError
    from raiox.vision import connection
    from raiox.vision.embedders import _build

    bad = tmp_path / "reader.onnx"
    bad.write_bytes(b"not a model at all")
    monkeypatch.setenv("RAIOX_CONNECTION_MODEL", str(bad))
    with pytest.raises(ConfigError) as raised:
        connection.zoom_of(connection.model_path())
    assert f"{bad} (RAIOX_CONNECTION_MODEL)" in raised.value.message and "\n" not in raised.value.message
    assert failure(raised.value) == (raised.value.message, 2)  # the CLI: one line, exit code 2
    with pytest.raises(ConfigError, match="RAIOX_EMBEDDER"):
        _build(f"onnx:{bad}")
