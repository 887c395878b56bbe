"""`raiox vision ...` on bad input: a one-line error (or typer's refusal of the option at fault) and exit 1 or 2, never
a traceback. Nothing here renders or trains: each case is refused before (or instead of) the long work."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from raiox.cli import app
from raiox.vision import compare
from raiox.vision.datagen import UnreadableData, load_npz
from raiox.vision.embedders import shipped_model


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # typer's error panel wraps at the terminal's width


def run(*args: str):
    return CliRunner().invoke(app, ["vision", *args])


def said(result) -> str:
    """What a command printed, typer's error panel flattened to one line of words."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return " ".join(result.output.replace("│", " ").split())


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z? \[")


def one_line(result) -> str:
    """The command's one `error: ...` line on stderr, besides the log lines of the work done before it (in the
    whole suite an earlier test may have set the log level to INFO: `locnet.shard` lines then precede the error)."""
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# raiox vision eval


@pytest.mark.parametrize("cache", ["empty", "missing"])
def test_eval_cached_only_on_an_empty_or_missing_cache_says_so(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    result = run("eval", "--limit", "2", "--no-write", "--cached-only", "--cache", str(tmp_path / cache))
    assert result.exit_code == 1
    assert "no demo system has all its renders" in one_line(result) and "drop --cached-only" in result.stderr


def test_eval_on_two_systems_draws_its_scenes_from_both(tmp_path):
    """--limit 2 used to crash drawing a 3-fixture scene out of 2 systems; its scenes hold both (2 fixtures)."""
    from raiox.synth import demo_catalog
    from raiox.vision.evaluate import EvalConfig, eval_items

    systems = demo_catalog()[:3]
    items = eval_items(EvalConfig(limit_systems=2, scenes=5), systems[:2])
    scenes = [members for key, members, cond in items if cond == "multi"]
    assert len(scenes) == 5 and all(sorted(m) == [0, 1] for m in scenes)
    # three systems or more: the same draws as before (the cached scenes stay current)
    again = eval_items(EvalConfig(limit_systems=3, scenes=5), systems)
    assert any(len(members) == 3 for key, members, cond in again if cond == "multi")


def test_eval_cached_only_treats_a_damaged_render_as_missing(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "g000-1.npz").write_bytes(b"PK\x03\x04 cut short")
    (cache / "q000-0.npz").write_text("not a render")
    result = run("eval", "--limit", "2", "--no-write", "--cached-only", "--cache", str(cache))
    assert result.exit_code == 1 and "no demo system has all its renders" in one_line(result)


def test_eval_cached_only_needs_a_cache():
    result = run("eval", "--limit", "2", "--no-write", "--cached-only")
    assert result.exit_code == 2 and "--cached-only reads the renders from --cache FOLDER" in said(result)


def test_eval_with_scenes_needs_two_systems():
    result = run("eval", "--limit", "1", "--no-write")
    assert result.exit_code == 2 and "a multi-implant scene needs 2 or more systems" in said(result)
    assert run("eval", "--limit", "0", "--no-write").exit_code == 2


@pytest.mark.parametrize("spec, why", [("bogus", "unknown embedder 'bogus'"),
                                       ("onnx:/nonexistent/model.onnx", "embedder model not found"),
                                       ("onnx:{features}", "not an image embedding model")])
def test_eval_with_an_unknown_embedder_is_refused_before_rendering(tmp_path, spec, why):
    spec = spec.format(features=shipped_model("features-v1"))
    result = run("eval", "--limit", "2", "--no-write", "--embedder", spec, "--cache", str(tmp_path / "cache"))
    assert result.exit_code == 2 and "Invalid value for --embedder" in said(result) and why in said(result)
    assert not (tmp_path / "cache").exists()  # nothing rendered


def test_eval_with_a_configured_embedder_that_cannot_load_names_the_setting(configure, tmp_path):
    configure(EMBEDDER="bogus")
    result = run("eval", "--limit", "2", "--no-write", "--cache", str(tmp_path / "cache"))
    line = one_line(result)
    assert result.exit_code == 2 and "RAIOX_EMBEDDER='bogus'" in line and "unknown embedder" in line


# raiox vision compare-hits


def good_hits(path):
    one = {"seed": 7000, "labels": [0, 1], "top1": [True, False], "top5": [True, True]}
    path.write_text(json.dumps({"version": compare.HITS_VERSION, "embedder": "A", "sets": [one]}))
    return path


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"not json", b"[1, 2]", b'{"version": 1, "sets": [1]}',
                                     b'{"version": 1, "embedder": "A", "sets": [{"seed": 1, "labels": [0], "top1": []'
                                     b', "top5": [true]}]}',
                                     None])
def test_compare_hits_on_a_file_that_is_not_a_hits_file_is_one_line(tmp_path, content):
    bad = tmp_path / "bad.json"
    if content is not None:  # None: no such file
        bad.write_bytes(content)
    for args in ([good_hits(tmp_path / "a.json"), bad], [bad, good_hits(tmp_path / "a.json")]):
        result = run("compare-hits", *map(str, args))
        assert result.exit_code == 1 and "bad.json: not a hits file" in one_line(result)


def test_compare_hits_still_reads_good_files(tmp_path):
    a, b = good_hits(tmp_path / "a.json"), good_hits(tmp_path / "b.json")
    assert run("compare-hits", str(a), str(b)).exit_code == 0


# raiox vision ensemble-embedders / ensemble-member


def test_ensemble_member_of_a_file_that_is_not_onnx_is_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff junk")
    result = run("ensemble-member", str(bad), "--index", "0", "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and "bad.onnx: not an ONNX model" in said(result)
    assert not (tmp_path / "m.onnx").exists()


def test_ensemble_member_of_a_model_that_is_no_ensemble_is_refused(tmp_path):
    result = run("ensemble-member", str(shipped_model("raiox-v1")), "--index", "0", "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and "not an ensemble file" in said(result)


def test_ensemble_embedders_of_a_corrupt_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    result = run("ensemble-embedders", str(bad), str(shipped_model("raiox-v1")), "--out", str(tmp_path / "e.onnx"))
    assert result.exit_code == 2 and "cannot load the ONNX model" in one_line(result) and "bad.onnx" in result.stderr


@pytest.mark.parametrize("first, why", [("features-v1", "not an image embedding model"),
                                        ("raiox-v0", "the members import different ONNX opsets (raiox-v0.onnx: 18, "
                                                     "raiox-v1.onnx: 17)")])
def test_ensemble_embedders_of_models_that_do_not_combine_is_refused(tmp_path, first, why):
    result = run("ensemble-embedders", str(shipped_model(first)), str(shipped_model("raiox-v1")),
                 "--out", str(tmp_path / "e.onnx"))
    assert result.exit_code == 2 and why in said(result)
    assert not (tmp_path / "e.onnx").exists()


# damaged data: shards and caches


def test_train_on_a_damaged_shard_is_one_line(tmp_path):
    data = tmp_path / "run" / "data"
    data.mkdir(parents=True)
    (data / "meta.json").write_text(json.dumps({"classes": 1, "per_class": 1, "seed": 0, "shard_size": 100}))
    (data / "shard-000.npz").write_text("a shard cut short by a full disk")  # exists: not rendered again
    result = run("train", "--out", str(tmp_path / "run"), "--classes", "1", "--per-class", "1", "--steps", "0")
    line = one_line(result)
    assert result.exit_code == 1 and "shard-000.npz: not a readable data file" in line and "render it again" in line


def test_train_from_a_missing_checkpoint_is_refused(tmp_path):
    result = run("train", "--out", str(tmp_path / "run"), "--init-from", str(tmp_path / "none.pt"))
    assert result.exit_code == 2 and "does not exist" in said(result)
    assert not (tmp_path / "run").exists()  # refused before any rendering


def test_load_npz_reads_the_arrays_asked_for_and_names_a_damaged_file(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, labels=np.arange(3), crops=np.zeros((3, 4)))
    assert load_npz(good, "labels")["labels"].tolist() == [0, 1, 2] and set(load_npz(good)) == {"labels", "crops"}
    cut, npy, text = tmp_path / "cut.npz", tmp_path / "one.npz", tmp_path / "text.npz"
    cut.write_bytes(good.read_bytes()[:60])
    with npy.open("wb") as f:
        np.save(f, np.arange(3))
    text.write_text("hello")
    for path, why in ((cut, "not a readable data file"), (npy, "not an .npz archive"), (text, "not an .npz archive"),
                      (good, "other is not a file in the archive")):
        with pytest.raises(UnreadableData, match=why) as raised:
            load_npz(path, "other" if path is good else "labels")
        assert str(path) in raised.value.message
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


# damaged model files: checkpoints, meta.json, models to start from


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A small rendered dataset (10 systems, 3 crops each), copied into each run that needs one."""
    from raiox.vision.datagen import render_dataset

    data = tmp_path_factory.mktemp("rendered") / "data"
    render_dataset(data, classes=10, per_class=3, seed=0)
    return data


def train_run(tmp_path, rendered, *args: str):
    import shutil

    run_dir = tmp_path / "run"
    if not (run_dir / "data").exists():
        shutil.copytree(rendered, run_dir / "data")
    return run("train", "--out", str(run_dir), "--classes", "10", "--per-class", "3", "--steps", "1", *args), run_dir


def test_train_with_no_step_to_take_ends_without_a_traceback(tmp_path, rendered):
    """--steps 0 (its minimum) divided by zero in the learning-rate schedule."""
    result, run_dir = train_run(tmp_path, rendered, "--steps", "0", "--name", "zero")
    assert result.exit_code == 0, result.output
    assert (run_dir / "zero.onnx").is_file()


@pytest.mark.parametrize("content", [b"PK\x03\x04 a checkpoint cut short", b"\x80\x04 not a pickle", None])
def test_train_resuming_a_damaged_checkpoint_is_one_line(tmp_path, rendered, content):
    import torch

    (tmp_path / "run").mkdir()
    ckpt = tmp_path / "run" / "ckpt.pt"
    if content is None:  # a checkpoint, but of something else
        torch.save({"step": 3}, ckpt)
    else:
        ckpt.write_bytes(content)
    result, _ = train_run(tmp_path, rendered)
    line = one_line(result)
    assert result.exit_code == 1 and "ckpt.pt: not a readable checkpoint" in line, line
    assert "delete it to start the run over" in line


def test_train_from_a_damaged_checkpoint_or_model_is_refused(tmp_path, rendered):
    import torch

    from raiox.vision.locnet import build_net

    cut, other, junk = tmp_path / "cut.pt", tmp_path / "locator.pt", tmp_path / "junk.onnx"
    cut.write_bytes(b"PK\x03\x04 cut short")
    torch.save({"net": build_net(1).state_dict()}, other)  # another network's checkpoint
    junk.write_bytes(b"\x0a\xff\xff\xff\xff junk")
    result, _ = train_run(tmp_path, rendered, "--init-from", str(cut))
    assert result.exit_code == 1 and "cut.pt: not a readable checkpoint (" in one_line(result)
    result, _ = train_run(tmp_path, rendered, "--init-from", str(other))
    assert result.exit_code == 2 and "locator.pt: not a checkpoint of this network" in said(result)
    for model, why in ((junk, "junk.onnx: not an ONNX model"), (shipped_model("features-v1"), "0 convolutions")):
        result, _ = train_run(tmp_path, rendered, "--init-from", str(model))
        assert result.exit_code == 2 and "not a model this network can start from" in said(result), said(result)
        assert why in said(result) and "Invalid value for --init-from" in said(result)


@pytest.mark.parametrize("content", ['{"classes": 10, "per_cl', "[10, 3]", "\udcff"])
def test_train_on_a_damaged_meta_json_is_one_line(tmp_path, rendered, content):
    import shutil

    shutil.copytree(rendered, tmp_path / "run" / "data")
    (tmp_path / "run" / "data" / "meta.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    result, _ = train_run(tmp_path, rendered)
    line = one_line(result)
    assert result.exit_code == 1 and "meta.json: not a readable JSON file" in line and "render it again" in line


@pytest.mark.parametrize("resume", [False, True])
def test_train_locator_from_a_damaged_or_foreign_checkpoint_is_one_line(tmp_path, resume):
    import torch

    out = tmp_path / "loc"
    out.mkdir()
    other = tmp_path / "other.pt"
    torch.save({"net": {"weight": torch.zeros(1)}}, other)
    if resume:  # the run's own checkpoint, damaged: what train-locator resumes from
        (out / "locator-ckpt.pt").write_bytes(b"cut")
        result = run("train-locator", "--out", str(out), "--scenes", "2", "--steps", "1")
        assert result.exit_code == 1 and "locator-ckpt.pt: not a readable checkpoint" in one_line(result)
        return
    result = run("train-locator", "--out", str(out), "--scenes", "2", "--steps", "1", "--warm-start", str(other))
    line = one_line(result)
    assert result.exit_code == 1 and "other.pt: its weights do not fit this network (" in line
    assert "Missing key(s)" in line and line.endswith("...)")  # torch lists every key: cut short


def test_damaged_json_and_checkpoints_are_unreadable_data_naming_the_file(tmp_path):
    import torch

    from raiox.vision.datagen import load_checkpoint, load_json, load_weights

    good, cut, array = tmp_path / "good.json", tmp_path / "cut.json", tmp_path / "array.json"
    good.write_text('{"classes": 3}')
    cut.write_text('{"classes": ')
    array.write_text("[3]")
    assert load_json(good) == {"classes": 3}
    for path, why in ((cut, "Expecting value"), (array, "a JSON list, not an object")):
        with pytest.raises(UnreadableData, match=why) as raised:
            load_json(path, "run it again")
        assert raised.value.message.startswith(f"{path}: not a readable JSON file") and "; run it again" in str(
            raised.value)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"net": {}, "step": 2}, ckpt)
    assert load_checkpoint(ckpt, "net", "step")["step"] == 2
    with pytest.raises(UnreadableData, match="no 'opt' in it"):
        load_checkpoint(ckpt, "net", "opt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    net = torch.nn.Linear(2, 2)
    with pytest.raises(UnreadableData, match="ckpt.pt: its weights do not fit this network"):
        load_weights(net, {"weight": torch.zeros(3, 3)}, ckpt)


def test_eval_locator_with_a_file_that_is_no_model_is_one_line_before_rendering(tmp_path):
    junk = tmp_path / "locator.onnx"
    junk.write_bytes(b"\x0a\xff\xff\xff\xff cut short")
    result = run("eval-locator", "--per", "1", "--model", str(junk), "--cache", str(tmp_path / "scenes.npz"))
    line = one_line(result)
    assert result.exit_code == 2 and "cannot load the ONNX model" in line and "locator.onnx" in line
    assert not (tmp_path / "scenes.npz").exists()  # refused before any scene was rendered


def test_an_onnx_model_that_does_not_run_on_a_crop_is_refused_as_an_embedder(tmp_path):
    """A model of image shape whose graph cannot take the crop (here: bytes, not floats) loaded, and failed in the
    middle of the analysis; it is refused when it loads."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT), helper.make_node("Flatten", ["f"], ["e"])],
        "bytes", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bytes.onnx"))
    result = run("eval", "--limit", "2", "--no-write", "--embedder", f"onnx:{tmp_path / 'bytes.onnx'}",
                 "--cache", str(tmp_path / "cache"))
    assert result.exit_code == 2 and "Invalid value for --embedder" in said(result)
    assert "not an image embedding model (it does not run on a crop" in said(result)


# the readers' ONNX metadata (raiox_zoom, raiox_embedder, raiox_heads)

ZOOM = '{"h": 112, "w": 80, "across": 1.3, "above": 0.3}'


@pytest.mark.parametrize(("zoom", "why"), [
    ('{"h": 112, "w": 80, "across": 1.3', "Expecting"),  # cut short: not JSON
    ('{"h": 112, "w": 80}', "missing 2 required positional arguments"),
    ("[112, 80, 1.3, 0.3]", "argument after ** must be a mapping"),
    ('{"h": "112", "w": 80, "across": 1.3, "above": 0.3}', "h and w must be positive whole numbers"),
    ('{"h": 112, "w": 80, "across": -1, "above": 0.3}', "across must be a positive number"),
])
def test_a_connection_model_whose_zoom_metadata_is_broken_is_one_line_naming_it(shipped_model_copy, monkeypatch,
                                                                                  zoom, why):
    """The zoom in a connection model's metadata was read with json.loads and Zoom(**...): broken JSON or a key
    missing was a traceback from every analysis. It is a configuration error naming the file, its setting and the
    entry (exit 2), at the first read: `raiox serve` / `worker` load the readers before they start."""
    from raiox.kit.cli_errors import failure
    from raiox.kit.errors import ConfigError
    from raiox.vision import connection
    from raiox.vision.pipeline import load_readers

    model = shipped_model_copy("connection-v2", raiox_zoom=zoom)
    monkeypatch.setenv("RAIOX_CONNECTION_MODEL", str(model))
    box = np.array([[0, 0], [9, 0], [9, 30], [0, 30]])
    for read in (lambda: connection.zoom_of(connection.model_path()), lambda: load_readers("raiox-v12"),
                 lambda: connection.read(np.zeros((64, 64), np.float32), [box])):
        with pytest.raises(ConfigError) as raised:
            read()
        message = raised.value.message
        assert message.startswith(f"cannot use the ONNX model {model} (RAIOX_CONNECTION_MODEL): ") and why in message
        assert "raiox_zoom" in message and "\n" not in message
        assert failure(raised.value) == (message, 2)


def test_ensemble_connection_of_a_model_with_broken_metadata_is_one_line_exit_1(shipped_model_copy, tmp_path):
    """A model given on the command line (no setting names it): one line naming the file, exit 1."""
    bad = shipped_model_copy("connection-v2", "bad.onnx", raiox_zoom="{not json")
    good = shipped_model_copy("connection-v2", "good.onnx")
    result = run("ensemble-connection", str(bad), str(good), "--out", str(tmp_path / "both.onnx"))
    line = one_line(result)
    assert result.exit_code == 1 and f"cannot use the ONNX model {bad}: its metadata entry raiox_zoom" in line, line
    assert not (tmp_path / "both.onnx").exists()


@pytest.mark.parametrize(("entries", "why"), [
    ({"raiox_heads": None}, "not a feature model (raiox vision train-features) (no metadata entry raiox_heads)"),
    ({"raiox_embedder": None}, "no metadata entry raiox_embedder"),
    ({"raiox_heads": '["apex_shape", "flutes"'}, "its metadata entry raiox_heads is not that of a feature model"),
    ({"raiox_heads": '{"apex_shape": 1}'}, "not a list of feature names"),
    ({"raiox_heads": '["apex_shape", "colour"]'}, "unknown features ['colour']"),
    ({"raiox_heads": '["apex_shape", "flutes"]'}, "its output has 27 columns, the classes of its features"),
])
def test_a_feature_model_whose_metadata_is_broken_is_one_line_naming_it(shipped_model_copy, monkeypatch, entries,
                                                                        why):
    """A feature model's raiox_heads was json.loads'ed and its names looked up at every read (a traceback, or columns
    read as the wrong features); a missing raiox_heads read nothing, silently. Each is one line naming the file."""
    from raiox.kit.errors import ConfigError
    from raiox.vision import features
    from raiox.vision.pipeline import load_readers

    model = shipped_model_copy("features-v2", **entries)
    monkeypatch.setenv("RAIOX_FEATURE_MODEL", str(model))
    for read in (lambda: load_readers("raiox-v12"), lambda: features.read(np.zeros((1, 512), np.float32), "raiox-v12"),
                 lambda: features.problem("raiox-v12")):
        with pytest.raises(ConfigError) as raised:
            read()
        assert raised.value.message.startswith(f"cannot use the ONNX model {model} (RAIOX_FEATURE_MODEL): ")
        assert why in raised.value.message and "\n" not in raised.value.message


def test_the_shipped_readers_metadata_reads(monkeypatch):
    from raiox.vision import connection, features
    from raiox.vision.pipeline import load_readers

    for env in ("RAIOX_CONNECTION_MODEL", "RAIOX_FEATURE_MODEL", "RAIOX_ENDS_MODEL"):
        monkeypatch.delenv(env, raising=False)
    load_readers("raiox-v12")
    assert connection.zoom_of(connection.model_path()) == connection.ZOOM
    assert features.heads_of(features.model_path("raiox-v12")) == features.READ
