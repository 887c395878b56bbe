"""The design-feature reader (`raiox.vision.features`): the re-rank bonus, which vectors it reads, what the shipped
model reads on demo systems it never saw, and `raiox vision train-features` on a tiny training set."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import features
from raiox.vision.attributes import HEADS


def _logp(name: str, probs: dict) -> np.ndarray:
    classes = HEADS[name][0]
    rest = (1 - sum(probs.values())) / (len(classes) - len(probs))
    return np.log(np.array([probs.get(c, rest) for c in classes], np.float64))


def test_bonus_sums_the_features_a_spec_names_and_averages_what_it_does_not():
    read = {"apex_shape": _logp("apex_shape", {"cone": 0.9}), "tapered": _logp("tapered", {True: 0.2})}
    cone_tapered = {"apex": {"shape": "cone"}, "taper_start": 0.4}
    flat_parallel = {"apex": {"shape": "flat"}, "taper_start": 1.0}
    no_apex = {"taper_start": 1.0}  # a spec without the feature: the mean of those that name it
    out = features.bonus(read, [cone_tapered, flat_parallel, no_apex, None])
    w = features.WEIGHT
    assert out[0] == pytest.approx(w * (np.log(0.9) + np.log(0.2)))
    assert out[1] == pytest.approx(w * (np.log(0.05) + np.log(0.8)))
    assert out[2] == pytest.approx(w * (np.mean(np.log([0.9, 0.05])) + np.log(0.8)))
    assert out[3] == pytest.approx(w * (np.mean(np.log([0.9, 0.05])) + np.mean(np.log([0.2, 0.8, 0.8]))))
    assert out[0] > out[1]
    assert not features.bonus(None, [cone_tapered]).any() and not features.bonus(read, [None, None]).any()
    assert not features.bonus(read, [cone_tapered], weight=0).any()
    assert features.spec_value({"apex": {"shape": "spiral"}}, "apex_shape") is None  # outside the classes


def test_the_shipped_reader_reads_only_its_embedders_vectors(monkeypatch):
    path = features.model_path()
    assert path is not None and path.name == features.MODEL_FILE
    vectors = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)
    reads = features.read(vectors, "raiox-v12")
    assert len(reads) == 3 and set(reads[0]) == set(features.READ)
    for name, logp in reads[0].items():
        assert logp.shape == (len(HEADS[name][0]),) and np.exp(logp).sum() == pytest.approx(1, abs=1e-5)
    assert not np.allclose(reads[0]["apex_shape"], reads[1]["apex_shape"])  # it reads the vector
    assert features.read(vectors, "raiox-v10") == [None] * 3  # another embedder's vectors: nothing read
    assert features.read(vectors[:0], "raiox-v12") == []
    monkeypatch.setenv(features.MODEL_ENV, "none")
    assert features.model_path() is None and features.read(vectors, "raiox-v12") == [None] * 3


def test_each_shipped_embedder_is_read_by_its_own_reader(monkeypatch):
    """raiox-v12 (default) and raiox-v11 each have a fitted reader; neither reads the other's vectors."""
    monkeypatch.delenv(features.MODEL_ENV, raising=False)
    vectors = np.random.default_rng(1).standard_normal((2, 512)).astype(np.float32)
    assert features.model_path().name == features.MODEL_FILE == features.SHIPPED["raiox-v12"]
    for embedder_id, other in (("raiox-v12", "raiox-v11"), ("raiox-v11", "raiox-v12")):
        own = features.model_path(embedder_id)
        assert own.name == features.SHIPPED[embedder_id]
        assert all(r is not None for r in features.read(vectors, embedder_id))  # found by the embedder's id
        assert features.read(vectors, other, own) == [None, None]
    v11, v12 = features.read(vectors, "raiox-v11"), features.read(vectors, "raiox-v12")
    assert not np.allclose(v11[0]["apex_shape"], v12[0]["apex_shape"])  # two fits, not one file twice


def test_the_shipped_reader_reads_demo_systems_it_never_saw():
    """Clean films of 16 demo systems (never in training), located and embedded by the product's pipeline."""
    from raiox.synth import demo_catalog, render_scene
    from raiox.vision import analyze, get_embedder

    demo = demo_catalog()
    picks = demo[::9][:16]
    embedder = get_embedder()
    assert embedder.model_id == "raiox-v12"
    right = {"apex_shape": [], "tapered": [], "profile": []}
    for k, system in enumerate(picks):
        sc = render_scene([system.spec], seed=70 + k, conditions={"size": (600, 800), "angulation": 3.0,
                                                                  "prosthesis": "none"})
        (fixture, *_) = analyze(sc.image, embedder)
        assert fixture.features is not None
        assert fixture.reverse is None or fixture.reverse.features is None  # a reverse reading (if any): not read
        for name in right:
            right[name].append(int(np.argmax(fixture.features[name])) == features.spec_value(system.spec, name))
    assert {name: np.mean(hits) for name, hits in right.items()} == pytest.approx(
        {name: 1.0 for name in right}, abs=0.2)  # held-out accuracy 0.92-0.97 on training systems
    references = analyze(sc.image, embedder, read_connection=False)  # catalog references read nothing
    assert all(f.features is None for f in references)


def test_train_features_embeds_fits_exports_and_resumes(tmp_path):
    pytest.importorskip("torch")
    from raiox.vision.datagen import render_dataset

    data = tmp_path / "data"
    assert render_dataset(data, classes=18, per_class=2, seed=3) == 36  # systems 0 and 16 held out
    out = tmp_path / "run"
    args = ["vision", "train-features", "--data", str(data), "--out", str(out), "--embedder", "raiox-v1",
            "--steps", "30", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = out / "features.onnx"
    assert "held-out accuracy apex_shape" in result.output
    card = (out / "features.md").read_text()
    assert "Reads the vectors of `raiox-v1` only" in card and "Held-out accuracy: apex_shape" in card
    from raiox.vision.onnxrt import session

    meta = session(str(model)).get_modelmeta().custom_metadata_map
    assert meta[features.EMBEDDER_KEY] == "raiox-v1" and json.loads(meta[features.HEADS_KEY]) == list(features.READ)
    vectors = np.random.default_rng(1).standard_normal((2, 512)).astype(np.float32)
    (read, _) = features.read(vectors, "raiox-v1", model)
    assert set(read) == set(features.READ)
    assert features.read(vectors, "raiox-v12", model) == [None, None]

    cached = sorted((out / "vectors").glob("*.npz"))
    assert [p.name for p in cached] == [p.name for p in sorted(data.glob("shard-*.npz"))]
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # vectors already there: not embedded again


def test_train_features_refuses_a_folder_without_shards(tmp_path):
    pytest.importorskip("torch")
    result = CliRunner().invoke(app, ["vision", "train-features", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "o")])
    assert result.exit_code == 1 and "no training shards" in result.output and "Traceback" not in result.output


def test_problem_names_a_configured_reader_that_would_read_nothing(monkeypatch, tmp_path):
    """Only a configured reader is a problem: the shipped fallback of an embedder without a reader is by design."""
    assert features.problem("raiox-v12") is None and features.problem("raiox-v1") is None
    v11_reader = features.model_path("raiox-v11")
    monkeypatch.setenv(features.MODEL_ENV, str(v11_reader))
    assert features.problem("raiox-v11") is None
    assert "reads the vectors of `raiox-v11`, not those of `raiox-v12`" in features.problem("raiox-v12")
    monkeypatch.setenv(features.MODEL_ENV, str(tmp_path / "gone.onnx"))
    assert features.problem("raiox-v12") == f"{features.MODEL_ENV}={tmp_path / 'gone.onnx'}: no such file"
    monkeypatch.setenv(features.MODEL_ENV, "none")
    assert features.problem("raiox-v12") is None
