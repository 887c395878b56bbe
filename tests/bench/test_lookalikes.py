"""bench/lookalikes.py: sibling separability at the embedder's input and the top-1 ceiling it implies."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_lookalikes", ROOT / "bench" / "lookalikes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ties_join_transitively_and_set_the_ceiling(bench):
    systems = [SimpleNamespace(id=i, group="G") for i in "abcd"]
    pair_max = {("G", "a", "b"): 0.02, ("G", "b", "c"): 0.05, ("G", "a", "d"): 0.4, ("G", "c", "d"): 0.3}
    top1, sets = bench.ceiling(systems, pair_max, threshold=0.1)
    assert sets["a"] == sets["c"] == {"a", "b", "c"} and sets["d"] == {"d"}
    assert top1 == pytest.approx((3 * (1 / 3) + 1) / 4)
    assert bench.ceiling(systems, pair_max, threshold=0.01)[0] == 1.0


def test_apex_siblings_differ_visibly_at_the_embedders_input(bench):
    from raiox.synth import demo_catalog

    group = [s for s in demo_catalog() if s.group == "G01-apex"]
    pair_max = bench.separability(group)
    assert len(pair_max) == 12  # every ordered pair could be drawn at the other's size
    assert min(pair_max.values()) > 0.1
    assert bench.ceiling(group, pair_max, 0.1)[0] == 1.0
    same = bench.at_size_of(group[0].spec, group[0].spec)
    assert abs(bench.crop(same) - bench.crop(group[0].spec)).max() == 0  # the same seed renders the same


def test_under_an_abutment_the_screw_holes_open_end_still_tells_connection_siblings_apart(bench):
    """A seated abutment hides the connecting part, but the end of the screw hole below the screw's tip stays
    open at a depth that follows the connection (until session 10 the abutment dimmed the whole void and
    three of these four tied)."""
    from raiox.synth import demo_catalog

    group = [s for s in demo_catalog() if s.group == "G05-connection"]
    open_, filled = bench.separability(group), bench.separability(group, "abutment")
    assert open_.keys() == filled.keys()
    assert min(filled.values()) > 0.1
    assert bench.ceiling(group, filled, 0.1)[0] == bench.ceiling(group, open_, 0.1)[0] == 1.0


def test_an_abutment_hides_cones_that_differ_only_inside_the_connection(bench):
    """G24's cones (8, 16, 22, 24 degrees) differ in angle, platform and screw: apart when open, tied once an
    abutment fills the cone and only the screw hole's end (1.6 / 1.8 / 2.0 mm wide) is left."""
    from raiox.synth import demo_catalog

    group = [s for s in demo_catalog() if s.group == "G24-cone_angle"]
    open_, filled = bench.separability(group), bench.separability(group, "abutment")
    assert min(open_.values()) > 0.1
    assert bench.ceiling(group, filled, 0.1)[0] < bench.ceiling(group, open_, 0.1)[0] == 1.0


def test_the_section_reports_both_ceilings(bench):
    systems = [SimpleNamespace(id=i, group="G") for i in "ab"]
    open_, filled = {("G", "a", "b"): 0.3, ("G", "b", "a"): 0.3}, {("G", "a", "b"): 0.02, ("G", "b", "a"): 0.02}
    text = bench.markdown(systems, open_, 0.1, "cmd", 0.08, filled)
    assert "| G | 2 | 0.300 / 0.300 / 0.300 | 0 of 2 | 2 of 2 |" in text
    assert "ceiling is **50.0%**" in text and "about **75.0%**" in text
