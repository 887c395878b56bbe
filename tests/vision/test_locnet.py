"""Training the localiser (`raiox vision train-locator`): target maps, scene shards, a resumable run
through the CLI at a chosen width, and the exported model running in `raiox.vision.locator`."""

import numpy as np
import pytest

from raiox.vision import locator


def test_targets_mark_the_fixture_and_its_two_ends_apart():
    from raiox.vision.locnet import targets

    box = np.array([[10, 4], [20, 4], [20, 44], [10, 44]], np.float32)  # platform at the top, apex below
    maps = targets([box], (64, 32), 1.0)
    fixture, platform, apex = maps
    assert fixture[24, 15] and not fixture[24, 25] and not fixture[50, 15]
    assert platform[6, 15] and not platform[40, 15]
    assert apex[40, 15] and not apex[6, 15]
    assert not (platform & apex).any()  # 30 % at each end: they never meet


def test_build_net_width_scales_channels_and_keeps_the_output_shape():
    torch = pytest.importorskip("torch")
    from raiox.vision.locnet import build_net

    small, wide = build_net(1), build_net(1.5)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert 2 * count(small) < count(wide) < 3 * count(small)
    with torch.no_grad():
        out = wide.eval()(torch.zeros(1, 1, 64, 96))
    assert tuple(out.shape) == (1, 3, 64 // locator.OUT_STRIDE, 96 // locator.OUT_STRIDE)


def test_scene_conditions_hard_share_draws_the_evaluations_conditions_and_keeps_the_old_recipe():
    from raiox.vision.locnet import scene_conditions

    def draws(hard, n=200):
        rng = np.random.default_rng(5)
        return [scene_conditions(rng, 0.5, hard) for _ in range(n)], rng.random()

    plain, after_plain = draws(0.0)
    assert not any({"noise", "blur", "angulation"} & set(c) for c in plain)  # render_scene's own ranges
    assert 0.35 < np.mean(["occlusion" in c for c in plain]) < 0.65
    every, _ = draws(1.0)
    assert all({"noise", "blur", "angulation"} <= set(c) for c in every)
    assert max(c["noise"] for c in every) > 0.035 and max(c["blur"] for c in every) > 1.6  # beyond the defaults
    assert len({c["size"] for c in every}) > 3  # the recipe's sizes, not the evaluation's one size
    # hard = 0 draws nothing more than the earlier recipe (size, prosthesis, occlusion), so its scenes stay
    rng = np.random.default_rng(5)
    for _ in range(200):
        rng.choice(6)
        if rng.random() < 0.3:
            rng.choice(3)
        if rng.random() < 0.5:
            rng.uniform(0.1, 0.3)
    assert rng.random() == after_plain


def test_train_locator_renders_resumable_shards_and_exports_a_working_model(tmp_path):
    pytest.importorskip("torch")
    import torch
    from typer.testing import CliRunner

    from raiox.cli import app

    out = tmp_path / "loc"
    args = ["vision", "train-locator", "--out", str(out), "--scenes", "3", "--steps", "3", "--seed", "1",
            "--width", "1.5", "--occlusion", "1"]
    only = CliRunner().invoke(app, [*args[:6], "--steps", "0", *args[8:]])  # scenes only
    assert only.exit_code == 0, only.output
    assert "3 scenes" in only.output and not (out / "locator-ckpt.pt").exists()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (shard,) = sorted((out / "scenes").glob("scenes-*.npz"))
    data = np.load(shard)
    assert data["images"].shape == (3, locator.LOC_SIDE, locator.LOC_SIDE) and data["images"].dtype == np.uint8
    assert data["maps"].shape == (3, 3, locator.LOC_SIDE // locator.OUT_STRIDE, locator.LOC_SIDE // locator.OUT_STRIDE)
    assert all(m[0].any() for m in data["maps"])  # every scene has at least one fixture
    saved = torch.load(out / "locator-ckpt.pt", weights_only=False)
    assert saved["step"] == 3 and saved["width"] == 1.5

    model = out / locator.TRAINED_FILE
    before = shard.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)  # rendered and trained already: nothing is redone
    assert again.exit_code == 0, again.output
    assert shard.stat().st_mtime_ns == before and model.exists()

    def one_step(folder, *more):  # one step at a vanishing rate on the same scenes
        (folder / "scenes").mkdir(parents=True)
        (folder / "scenes" / shard.name).symlink_to(shard)
        run = CliRunner().invoke(app, ["vision", "train-locator", "--out", str(folder), "--scenes", "3", "--steps", "1",
                                       "--lr", "1e-9", "--width", "1.5", *more])
        assert run.exit_code == 0, run.output
        return torch.load(folder / "locator-ckpt.pt", weights_only=False)

    warm = one_step(tmp_path / "warm", "--seed", "2", "--warm-start", str(out / "locator-ckpt.pt"))
    fresh = one_step(tmp_path / "fresh", "--seed", "2")
    assert warm["step"] == 1 and warm["width"] == 1.5
    weight = next(k for k, v in saved["net"].items() if k.endswith("weight") and v.dim() == 4)
    assert torch.allclose(warm["net"][weight], saved["net"][weight], atol=1e-6)  # a new schedule from those weights
    assert not torch.allclose(fresh["net"][weight], saved["net"][weight], atol=1e-3)  # without it: a fresh net

    image = np.random.default_rng(0).random((300, 500)).astype(np.float32)
    prob, scale = locator.predict(image, path=model)
    assert prob.shape[0] == 3 and np.all((prob >= 0) & (prob <= 1))
    assert scale == pytest.approx(locator.LOC_SIDE / 500 / locator.OUT_STRIDE, rel=0.02)


def test_eval_locator_scores_the_shipped_model_on_cached_scenes(tmp_path):
    from typer.testing import CliRunner

    from raiox.cli import app
    from raiox.vision import loceval

    if locator.model_path() is None:
        pytest.skip(f"{locator.MODEL_FILE} is not shipped")
    cache = tmp_path / "scenes.npz"
    result = CliRunner().invoke(app, ["vision", "eval-locator", "--per", "2", "--seed", "5", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "recall" in result.output and "multi" in result.output and cache.exists()
    images, boxes, conds = loceval.scenes(2, 5, cache)
    assert (len(images) == 12 and conds.count("multi") == 2
            and all(len(b) >= 2 for b, c in zip(boxes, conds) if c == "multi"))
    res = loceval.evaluate(2, 5, cache=cache)
    assert res["tp"] + res["fn"] == sum(len(b) for b in boxes)
    assert res["recall"] >= 0.5 and res["mean_iou"] >= 0.5  # the shipped localiser finds most clear fixtures
    again, _, _ = loceval.scenes(2, 6, cache)  # another seed: rendered again, not the cached scenes
    assert not np.array_equal(again[0], images[0])


def test_eval_locator_renders_again_after_a_renderer_change(tmp_path, monkeypatch):
    """Cached held-out scenes of another renderer would score the localiser on scenes the renderer no
    longer draws: a cache is reused only when the renderer's code digest matches."""
    from raiox.vision import loceval

    cache = tmp_path / "scenes.npz"
    images, _, _ = loceval.scenes(1, 5, cache)
    stamp = cache.stat().st_mtime_ns
    loceval.scenes(1, 5, cache)
    assert cache.stat().st_mtime_ns == stamp  # same renderer: read back, not written again
    np.savez_compressed(cache, **{**np.load(cache, allow_pickle=True), "renderer": np.array("0" * 16)})
    again, _, _ = loceval.scenes(1, 5, cache)
    np.testing.assert_allclose(again[0], images[0], atol=1 / 65535)
    assert str(np.load(cache, allow_pickle=True)["renderer"]) != "0" * 16  # rendered and stored again


def test_end_evidence_reads_which_end_of_a_box_the_maps_call_the_platform():
    """Maps with a platform blob at the top and an apex blob at the bottom of a vertical fixture: the box drawn
    platform-first reads +2, the same box turned end for end -2, a box over empty maps 0, and a neighbour's ends
    beside the box do not count."""
    prob = np.zeros((3, 40, 40), np.float32)
    prob[0, 8:32, 18:22] = 1
    prob[1, 8:11, 18:22] = 0.9  # platform end
    prob[2, 29:32, 18:22] = 0.8  # apex end
    prob[2, 8:11, 32:36] = 1.0  # another fixture's apex, level with this one's platform, well to the side
    box = np.array([[22, 8], [18, 8], [18, 32], [22, 32]], np.float32)  # map pixels: scale 1
    assert locator.end_evidence(prob, 1.0, box) == pytest.approx(1.7)
    assert locator.end_evidence(prob, 1.0, box[[2, 3, 0, 1]]) == pytest.approx(-1.7)
    assert locator.end_evidence(np.zeros_like(prob), 1.0, box) == 0.0
    # image coordinates: the same box at twice the size reads the same through the image->map scale
    assert locator.end_evidence(prob, 0.5, (box + 0.5) * 2 - 0.5) == pytest.approx(1.7)


def test_a_box_the_maps_read_the_other_way_up_is_turned_and_an_unclear_one_is_not():
    prob = np.zeros((3, 40, 40), np.float32)
    prob[0, 8:32, 18:22] = 1
    prob[1, 8:11, 18:22] = 0.9
    prob[2, 29:32, 18:22] = 0.8
    right = np.array([[22, 8], [18, 8], [18, 32], [22, 32]], np.float32)
    turned = locator._ends_read(prob, 1.0, locator.Detection(right[[2, 3, 0, 1]], 0.9))  # drawn apex first
    np.testing.assert_array_equal(turned.box, right)
    assert turned.ends == pytest.approx(1.7) and turned.confidence == 0.9
    faint = prob.copy()
    faint[1] *= 0.2  # the maps lean the other way by less than FLIP_BELOW: the box stays as drawn
    faint[2] *= 0.2
    kept = locator._ends_read(faint, 1.0, locator.Detection(right[[2, 3, 0, 1]], 0.9))
    np.testing.assert_array_equal(kept.box, right[[2, 3, 0, 1]])
    assert locator.FLIP_BELOW < kept.ends < 0
