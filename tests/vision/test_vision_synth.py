"""Vision on raiox.synth renders: localisation with prosthetics, canonicalisation invariance."""

import numpy as np
import pytest

from raiox.synth import demo_catalog, render_reference, render_scene
from raiox.vision import analyze, get_embedder, locate
from raiox.vision.detect import box_iou


@pytest.fixture(scope="module")
def systems():
    return demo_catalog()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_locate_finds_the_fixture_not_the_crown(systems, seed):
    scene = render_scene([systems[seed].spec], seed=seed,
                         conditions={"size": (600, 800), "prosthesis": "crown", "angulation": 5.0, "occlusion": 0.0})
    found = locate(scene.image)
    truth = scene.boxes[0]
    best = max(found, key=lambda d: box_iou(d.box, truth))
    assert box_iou(best.box, truth) >= 0.5
    top = best.box[:2].mean(0)
    assert np.hypot(*(top - truth[:2].mean(0))) < np.hypot(*(top - truth[2:].mean(0)))  # platform end
    crown_side = truth[:2].mean(0) + (truth[:2].mean(0) - truth[2:].mean(0)) * 0.6  # inside the crown
    for d in found:  # no detection sits on the crown above the platform
        assert np.hypot(*(d.box.mean(0) - crown_side)) > 0.3 * np.hypot(*(truth[0] - truth[3]))


@pytest.mark.parametrize("turn", ["rot90", "flipud", "fliplr"])
def test_reference_invariance_under_rotation_and_flip(systems, turn):
    embedder = get_embedder()
    image = render_reference(systems[3].spec, seed=1)
    moved = {"rot90": np.rot90, "flipud": np.flipud, "fliplr": np.fliplr}[turn](image).copy()
    a, b = analyze(image, embedder), analyze(moved, embedder)
    assert a and b
    assert float(a[0].embedding @ b[0].embedding) > 0.9  # through the learned locator: boxes move a little


def _pano_scene(systems, index: int, seed: int, px_per_mm: float):
    """A panoramic-style crop at low magnification: the fixture is ~30 px of the net's 256-px input."""
    return render_scene([systems[index].spec], seed=seed, conditions={
        "size": (600, 800), "modality": "pano", "px_per_mm": px_per_mm, "angulation": 8.0, "occlusion": 0.0,
        "prosthesis": "none", "text": True})


@pytest.mark.parametrize("index, seed", [(5, 1), (40, 2), (90, 3)])
def test_a_small_fixture_is_found_by_the_zoom_pass(systems, monkeypatch, index, seed):
    from raiox.vision import locator

    scene = _pano_scene(systems, index, seed, px_per_mm=8.5)
    truth = scene.boxes[0]
    zoomed = []
    real = locator._zoomed
    monkeypatch.setattr(locator, "_zoomed", lambda *a: zoomed.extend(real(*a)) or zoomed)
    found = locate(scene.image)
    assert any(box_iou(d.box, truth) >= 0.5 for d in found)
    # the zoom pass ran and its box is the one that matches (the first pass's fixture blob is too small)
    assert any(box_iou(d.box, truth) >= 0.3 for d in zoomed)


def test_no_zoom_pass_when_an_ordinary_fixture_is_found(systems, monkeypatch):
    from raiox.vision import locator

    scene = render_scene([systems[11].spec], seed=11, conditions={"size": (600, 800), "prosthesis": "crown",
                                                                  "angulation": 5.0, "occlusion": 0.0})
    calls = []
    monkeypatch.setattr(locator, "_zoomed", lambda *a: calls.append(1) or [])
    assert any(box_iou(d.box, scene.boxes[0]) >= 0.5 for d in locate(scene.image))
    assert not calls


@pytest.mark.parametrize("key, cond, needs_rule", [("q020-2", "blur", False), ("q143-0", "occlusion", True),
                                                   ("q139-4", "occlusion", False)])
def test_the_zoom_pass_keeps_what_the_first_pass_hinted_at(systems, monkeypatch, key, cond, needs_rule):
    """Small fixtures of the vision evaluation that the first pass saw only faintly, under an occluder or
    blurred: the zoom pass's blob, less sure (q020, q143) or longer than 48 px (q139), finds them. With the
    rule off (sure zoom blobs under 48 px only) locator-v1 found none; locator-v2 still needs it for q143 and
    finds the other two without it (they must stay found). (Renders of the evaluation's seed: q113-4 was the
    long one until session 17's catalog fix changed its line sizes.)"""
    from raiox.vision import evaluate as ev
    from raiox.vision import locator

    image, boxes, _ = ev.render_item(key, [int(key[1:4])], cond, systems, ev.EvalConfig())
    assert any(box_iou(d.box, boxes[0]) >= 0.5 for d in locate(image))
    if not needs_rule:
        return
    monkeypatch.setattr(locator, "ZOOM_MAYBE", locator.ZOOM_CONFIDENCE)
    monkeypatch.setattr(locator, "ZOOM_SMALL", locator.SMALL)
    monkeypatch.setattr(locator, "LAST_ZOOM", locator.ZOOM)  # the last pass for empty films (3x) finds q143 too
    assert not any(box_iou(d.box, boxes[0]) >= 0.5 for d in locate(image))
