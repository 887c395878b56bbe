"""The thread count (raiox.vision.threads): length over pitch read off a fixture's silhouette, and the re-rank
bonus it gives catalog systems by the lengths their lines are sold in.

Real parts: renders of demo-catalog specs at known sizes and scales (the catalog search's use of it:
tests/catalog/test_catalog_search.py)."""

import numpy as np
import pytest

from raiox.vision import threads
from raiox.vision.ranking import Reads, rank, read_bonus
from raiox.vision.threads import Line, Turns, line_of


def _spec(pitch: float, length: float, diameter: float = 4.0, profile: str = "v") -> dict:
    from raiox.synth import demo_catalog, with_size

    base = next(s.spec for s in demo_catalog() if s.spec["thread"]["leads"] == 1)
    spec = with_size(base, diameter, length)
    spec["thread"] = {**spec["thread"], "pitch_mm": pitch, "profile": profile, "progressive": False}
    return spec


def _count(spec: dict, **conditions) -> Turns:
    from raiox.synth import render_scene

    cond = {"size": (700, 500), "prosthesis": "none", "angulation": 0.0, "neighbours": False, "distractors": False,
            "occlusion": 0.0, **conditions}
    scene = render_scene([spec], seed=3, conditions=cond)
    return threads.read(scene.image, scene.boxes[0])


@pytest.mark.parametrize("pitch, length", [(0.8, 10.0), (1.2, 13.0), (2.5, 11.5), (0.6, 8.0)])
def test_the_count_reads_length_over_pitch(pitch, length):
    read = _count(_spec(pitch, length))
    expected = (length + threads.OFFSET_MM) / pitch
    assert read is not None and abs(np.log(read.turns / expected)) < 0.08, (read, expected)


def test_the_count_does_not_depend_on_the_films_scale_or_rotation():
    spec = _spec(1.0, 11.5)
    counts = [_count(spec, px_per_mm=ppm, rotation=rot).turns
              for ppm, rot in ((14.0, 0.0), (22.0, 35.0), (30.0, -80.0))]
    assert max(counts) / min(counts) < 1.06, counts
    assert abs(np.log(np.mean(counts) / ((11.5 + threads.OFFSET_MM) / 1.0))) < 0.08


def test_a_box_too_short_or_without_a_silhouette_is_not_counted():
    image = np.random.default_rng(0).random((200, 200), dtype=np.float32)
    box = np.array([[90, 90], [100, 90], [100, 100], [90, 100]], np.float32)
    assert threads.read(image, box) is None
    flat = np.full((300, 300), 0.4, np.float32)  # a blank film: no edge to follow
    assert threads.read(flat, np.array([[120, 40], [180, 40], [180, 260], [120, 260]], np.float32)) is None
    bar = np.zeros((300, 300), np.float32)
    bar[40:260, 130:170] = 1.0  # a smooth rod (no threads): edges straight, spectrum empty
    assert threads.read(bar, np.array([[120, 40], [180, 40], [180, 260], [120, 260]], np.float32)) is None


def test_a_line_comes_from_the_spec_pitch_and_the_attribute_lengths():
    spec = {"thread": {"pitch_mm": 1.2}, "length_mm": 10}
    assert line_of(spec, {"lengths": [8, 10, 11.5]}) == Line(1.2, (8.0, 10.0, 11.5))
    assert line_of(spec, {"lengths": "8,10; 11.5"}) == Line(1.2, (8.0, 10.0, 11.5))  # as a CSV import stores it
    assert line_of(spec, {"lengths": [8, "x", -1]}) == Line(1.2, (8.0,))
    assert line_of(spec, {}) == Line(1.2, (10.0,))  # no lengths listed: the spec's own
    assert line_of({"thread": {}, "length_mm": 10}) is None and line_of(None) is None
    assert line_of({"thread": {"pitch_mm": True}, "length_mm": 10}) is None


def test_the_bonus_favours_a_line_sold_in_the_counted_length():
    read = Turns(turns=(11.5 + threads.OFFSET_MM) / 1.2, quality=10.0)
    lines = [Line(1.2, (8.0, 10.0, 13.0)), Line(1.2, (8.0, 11.5, 16.0)), None, Line(1.0, (11.5,)), Line(1.2, (11.5,))]
    bonus = threads.bonus(read, lines)
    assert bonus[4] == pytest.approx(0.0, abs=1e-9)  # its only length fits exactly: no penalty
    # one length of three fits: the likelihood of a size drawn from the line
    assert bonus[1] == pytest.approx(threads.WEIGHT * np.log((1 / 3 + threads.FLOOR) / (1 + threads.FLOOR)), rel=1e-3)
    assert bonus[0] < bonus[1] and bonus[3] < bonus[1]  # no length fits / another pitch
    assert bonus[2] == pytest.approx(np.mean(bonus[[0, 1, 3, 4]]))  # no line: the mean, no reward, no penalty
    assert (bonus <= 0).all() and bonus.min() >= threads.WEIGHT * np.log(threads.FLOOR / (1 + threads.FLOOR)) - 1e-12
    assert not threads.bonus(None, lines).any() and not threads.bonus(read, lines, weight=0).any()
    assert not threads.bonus(read, [None, None]).any()


def test_the_count_breaks_a_tie_between_siblings_sold_in_other_lengths():
    """Two systems whose references the query matches equally (a cone under an abutment): the one whose line
    holds the counted length comes first, in the evaluation's ranking and in read_bonus alike."""
    rng = np.random.default_rng(1)
    a, b, other = (v / np.linalg.norm(v) for v in rng.standard_normal((3, 16)))
    gallery = np.stack([a, a, b, b, other, other]).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    query = ((a + b) / np.linalg.norm(a + b))[None].astype(np.float32)
    lines = [Line(1.0, (8.0, 10.0)), Line(1.0, (13.0, 16.0)), None]
    counted = Turns((13.0 + threads.OFFSET_MM) / 1.0, 9.0)
    assert rank(gallery, labels, query, 3, turns=[counted], lines=lines)[0, 0] == 1
    assert rank(gallery, labels, query, 3, turns=[Turns((10.0 + threads.OFFSET_MM) / 1.0, 9.0)], lines=lines)[0, 0] == 0
    assert not Reads() and Reads(turns=counted)
    assert read_bonus(2, Reads(turns=counted), lines=lines[:2]).argmax() == 1



def test_analyze_counts_each_fixture_unless_switched_off(monkeypatch):
    from raiox.kit.settings import get_settings
    from raiox.synth import render_scene
    from raiox.vision import analyze, get_embedder

    spec = _spec(1.0, 11.5)
    scene = render_scene([spec], seed=4, conditions={"size": (700, 500), "prosthesis": "none", "angulation": 0.0})
    (fixture,) = analyze(scene.image, get_embedder(), boxes=[scene.boxes[0]])
    assert fixture.turns is not None and fixture.reads().turns is fixture.turns
    assert abs(np.log(fixture.turns.turns / ((11.5 + threads.OFFSET_MM) / 1.0))) < 0.08
    monkeypatch.setenv("RAIOX_THREAD_COUNT", "false")
    get_settings.cache_clear()
    try:
        (off,) = analyze(scene.image, get_embedder(), boxes=[scene.boxes[0]])
    finally:
        monkeypatch.delenv("RAIOX_THREAD_COUNT")
        get_settings.cache_clear()
    assert off.turns is None and threads.enabled()  # on again once the setting is gone
