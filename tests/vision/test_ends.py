"""The ends model (`raiox.vision.ends`): strip geometry, decoding, training on a few scenes, and
what the shipped model does to the localiser's boxes on scenes it never saw."""

import numpy as np
import pytest

from raiox.vision import ends
from raiox.vision.canonical import box_frame
from raiox.vision.refine import Frame, Pyramid


def _scene(seed: int, **cond):
    from raiox.synth import render_scene
    from raiox.vision.specdraw import random_spec

    rng = np.random.default_rng(seed)
    spec = random_spec(rng)
    return render_scene([spec], seed=seed, conditions={"size": (600, 800), **cond})


def test_strip_of_a_box_spans_its_own_middle_half_and_round_trips():
    sc = _scene(3, angulation=0.0, prosthesis="abutment")
    truth = np.asarray(sc.boxes[0])
    image, geom = ends.strip(Pyramid(sc.image), truth)
    assert image.shape == (ends.STRIP_H, ends.STRIP_W) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    r0, r1, c0, c1 = geom.index(truth)
    edge = ends.REACH_T / (1 + 2 * ends.REACH_T) * (ends.STRIP_H - 1)
    assert r0 == pytest.approx(edge, abs=1e-3) and r1 == pytest.approx(ends.STRIP_H - 1 - edge, abs=1e-3)
    assert c0 + c1 == pytest.approx(ends.STRIP_W - 1, abs=1e-3)
    np.testing.assert_allclose(geom.box((r0, r1), (c0, c1)), truth, atol=0.05)  # truth: float32, near-rectangular
    # the fixture (bright metal) fills the strip's middle rows; its mean there beats the far ends'
    mid = image[int(r0) + 5 : int(r1) - 5, int(c0) + 2 : int(c1) - 2].mean()
    assert mid > image[: int(edge / 2)].mean() or mid > image[-int(edge / 2) :].mean()


def test_run_of_finds_the_strongest_run_and_interpolates_its_edges():
    logits = np.full(40, -6.0)
    logits[10:30] = 6.0
    logits[9], logits[30] = 0.0, 0.0  # exactly p = 0.5 at rows 9 and 30
    logits[35:37] = 6.0  # a short second run
    first, last = ends.run_of(logits, 5)
    assert first == pytest.approx(9.0, abs=1e-6) and last == pytest.approx(30.0, abs=1e-6)
    assert ends.run_of(np.full(40, -3.0), 5) is None
    assert ends.run_of(logits[33:], 5) is None  # only the 2-row run (and a cut-off edge) is left


def test_without_a_model_boxes_are_unchanged(monkeypatch):
    sc = _scene(4)
    monkeypatch.setenv(ends.MODEL_ENV, "none")
    assert ends.model_path() is None
    out = ends.adjust(Pyramid(sc.image), [np.asarray(sc.boxes[0])])
    np.testing.assert_array_equal(out[0], np.asarray(sc.boxes[0], np.float32))


def test_train_ends_renders_resumable_shards_and_exports_a_working_model(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from raiox.cli import app

    out = tmp_path / "ends"
    args = ["vision", "train-ends", "--out", str(out), "--scenes", "2", "--steps", "4", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (shard,) = sorted((out / "strips").glob("strips-*.npz"))
    data = np.load(shard)
    assert data["strips"].dtype == np.uint8 and data["strips"].shape[1:] == (ends.STRIP_H, ends.STRIP_W)
    assert len(data["strips"]) >= 2 * 4  # each fixture: the localiser's box (when found) + 3 disturbed
    t = data["targets"]
    assert np.all(t[:, 0] < t[:, 1]) and np.all(t[:, 2] < t[:, 3])
    model = out / "ends-v1.onnx"
    assert f"{len(t)} strips" in result.output and model.exists()

    before = shard.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)  # rendered and trained already: nothing is redone
    assert again.exit_code == 0 and shard.stat().st_mtime_ns == before

    sc = _scene(5)
    boxes = ends.adjust(Pyramid(sc.image), [np.asarray(sc.boxes[0])], path=model)
    assert boxes[0].shape == (4, 2) and np.isfinite(boxes[0]).all()


def _platform_error(box, truth) -> float:
    _, axis, length, _ = box_frame(truth)
    return abs(float((box[:2].mean(0) - np.asarray(truth)[:2].mean(0)) @ axis)) / length


@pytest.mark.skipif(ends.model_path() is None, reason="ends-v1.onnx is not shipped")
def test_shipped_model_pulls_a_misplaced_platform_edge_back():
    """Ground-truth boxes of unseen scenes (abutments, crowns, caps) with the platform edge moved by
    a quarter of the length, up or down: the model puts it back within a few percent."""
    from raiox.vision.locator import locate_learned
    from raiox.vision.evaluate import match

    errors_in, errors_out, located = [], [], []
    for seed in range(8):
        sc = _scene(100 + seed, prosthesis=["abutment", "crown", "healing", "none"][seed % 4], angulation=5.0)
        truth = np.asarray(sc.boxes[0])
        f = Frame.of(truth)
        shift = 0.25 * f.length * (1 if seed % 2 else -1)
        moved = Frame(f.centre, f.axis, f.normal, f.t0 + shift, f.t1, f.s0, f.s1).box()
        pyr = Pyramid(sc.image)
        (fixed,) = ends.adjust(pyr, [moved])
        errors_in.append(_platform_error(moved, truth))
        errors_out.append(_platform_error(fixed, truth))
        found = locate_learned(sc.image)
        located += [_platform_error(found[i].box, truth) for i, _ in match(found, [truth])]
    assert np.median(errors_in) == pytest.approx(0.25, abs=0.01)
    assert np.median(errors_out) < 0.06
    assert np.median(located) < 0.06  # the localiser's own boxes, adjusted


def test_scene_conditions_can_force_a_share_of_occluded_scenes():
    from raiox.vision.endsnet import scene_conditions

    plain = [scene_conditions(np.random.default_rng(k)) for k in range(40)]
    assert plain == [scene_conditions(np.random.default_rng(k), None) for k in range(40)]  # default draws unchanged
    assert sum(c.get("occlusion", 0) > 0 for c in plain) < 20
    forced = [scene_conditions(np.random.default_rng(k), 1.0) for k in range(40)]
    assert all(c["occlusion"] >= 0.15 for c in forced)
    assert all("size" in c for c in forced)


def test_model_path_and_problem_follow_the_setting(monkeypatch, tmp_path):
    """The shipped ends-v1 unless RAIOX_ENDS_MODEL names another file or `none`; a named file that is not there
    is a problem (/readyz and `raiox vision eval` say so) instead of a step silently skipped."""
    monkeypatch.delenv(ends.MODEL_ENV, raising=False)
    assert ends.model_path().name == ends.MODEL_FILE and ends.problem() is None
    monkeypatch.setenv(ends.MODEL_ENV, "none")
    assert ends.model_path() is None and ends.problem() is None
    monkeypatch.setenv(ends.MODEL_ENV, str(tmp_path / "gone.onnx"))
    assert ends.model_path() is None
    assert ends.problem() == f"RAIOX_ENDS_MODEL={tmp_path / 'gone.onnx'}: no such file"
