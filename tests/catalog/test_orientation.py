"""The orientation check: a located fixture whose platform and apex ends were called the wrong way round is read
the other way up when that matches the catalog much better (`raiox.catalog.search.search_fixture`).

Real parts: demo-catalog renders, the shipped localiser, embedder and connection reader, the catalog on the
embedded PostgreSQL + pgvector."""

import numpy as np
import pytest

from raiox.catalog import repository
from raiox.catalog.search import search_fixture, search_systems
from raiox.vision.evaluate import platform_ok
from raiox.vision.pipeline import analyze, embed_reference, reverse_box
from raiox.vision.ranking import ORIENTATION_MARGIN, turn_over
from catalog_helpers import add_system

SYSTEMS = 6  # demo systems in the test catalog


@pytest.fixture(scope="module")
def renders():
    """References (three sizes of the line) of six demo systems of different look-alike groups, and a film of the
    first."""
    from raiox.synth import demo_catalog, line_size, render_reference, render_scene

    firsts = {}
    for system in demo_catalog():
        firsts.setdefault(system.group, system)
    demo = list(firsts.values())[:SYSTEMS]
    refs = {s.id: [render_reference(line_size(s, k), seed=k) for k in range(3)] for s in demo}
    film = render_scene([line_size(demo[0], 1)], seed=5, conditions={"size": (600, 800), "angulation": 6.0,
                                                                     "prosthesis": "none"})
    return demo, refs, film


@pytest.fixture
def always_checked(monkeypatch):
    """Every located fixture read both ways up (ENDS_SURE above any end evidence, -2..2): the check itself under
    test."""
    from raiox.vision import ranking

    monkeypatch.setattr(ranking, "ENDS_SURE", 3.0)


async def _catalog(session, demo, refs, embedder) -> None:
    for system in demo:
        await repository.upsert_system(session, system.id, "Test Co", system.name, {}, system.spec)
        await add_system(session, system.id, np.stack([embed_reference(img, embedder) for img in refs[system.id]]),
                         embedder.model_id)


def test_the_rule_is_a_margin_on_the_best_system_score():
    assert turn_over(0.70, 0.70 + ORIENTATION_MARGIN + 0.001)
    assert not turn_over(0.70, 0.70 + ORIENTATION_MARGIN - 0.001)
    assert not turn_over(0.80, 0.70)


def test_only_a_fixture_whose_ends_the_localiser_is_unsure_of_carries_its_reverse_reading(renders, monkeypatch):
    from raiox.vision import get_embedder, ranking
    from raiox.vision.detect import locate

    _, _, film = renders
    embedder = get_embedder()
    (found,) = locate(film.image)
    assert found.ends >= ranking.ENDS_SURE  # a plain film: the maps are sure of its ends
    assert analyze(film.image, embedder)[0].reverse is None  # so no reverse reading is spent on it
    monkeypatch.setattr(ranking, "ENDS_SURE", found.ends + 0.01)
    assert analyze(film.image, embedder)[0].reverse is not None


def test_a_located_fixture_carries_its_reverse_reading_and_a_given_box_does_not(renders, always_checked):
    from raiox.vision import get_embedder

    _, _, film = renders
    embedder = get_embedder()
    fixture = analyze(film.image, embedder)[0]
    back = fixture.reverse
    assert back is not None and back.reverse is None
    assert fixture.connection is not None and back.connection is None  # the reader costs most: not read reversed
    np.testing.assert_array_equal(back.box, reverse_box(fixture.box))
    assert back.confidence == fixture.confidence
    assert float(back.embedding @ fixture.embedding) < 0.9  # a different crop (turned 180 degrees), not a copy
    turned = fixture.reversed()
    np.testing.assert_array_equal(turned.box, back.box)
    np.testing.assert_array_equal(turned.embedding, back.embedding)
    np.testing.assert_array_equal(turned.reversed().box, fixture.box)  # and back again
    given = analyze(film.image, embedder, boxes=[fixture.box])[0]
    assert given.reverse is None
    with pytest.raises(ValueError, match="no reverse reading"):
        given.reversed()


async def test_an_upside_down_fixture_is_turned_back_and_a_right_one_is_left_alone(session, renders, always_checked):
    from raiox.vision import get_embedder

    demo, refs, film = renders
    embedder = get_embedder()
    await _catalog(session, demo, refs, embedder)
    fixture = analyze(film.image, embedder)[0]
    assert platform_ok(fixture.box, film.boxes[0])  # the localiser called the ends right on this film

    kept, found = await search_fixture(session, fixture, embedder.model_id, 3)
    assert kept is fixture
    plain = await search_systems(session, fixture.embedding, embedder.model_id, 3, connection=fixture.connection)
    assert [c.system_id for c in found] == [c.system_id for c in plain]
    assert found[0].system_id == demo[0].id

    upside_down = fixture.reversed()  # what a wrong platform-end call hands the search
    wrong = await search_systems(session, upside_down.embedding, embedder.model_id, 1)
    turned, found = await search_fixture(session, upside_down, embedder.model_id, 3)
    np.testing.assert_array_equal(turned.box, fixture.box)
    np.testing.assert_array_equal(turned.embedding, fixture.embedding)
    assert turned.connection is not None and np.allclose(turned.connection, fixture.connection)
    assert found[0].system_id == demo[0].id
    assert found[0].score > wrong[0].score + ORIENTATION_MARGIN


async def test_identify_reports_the_box_the_way_it_was_searched(session, renders, monkeypatch, always_checked):
    """`raiox identify` / POST /identify: the box it returns is the one searched, platform edge first."""
    from raiox.catalog import identify as identify_module
    from raiox.synth import to_png
    from raiox.vision import get_embedder
    from raiox.vision import pipeline

    demo, refs, film = renders
    embedder = get_embedder()
    await _catalog(session, demo, refs, embedder)
    real = pipeline.analyze

    def wrong_way_round(image, emb, boxes=None, read_connection=True, fit=False):  # the localiser's wrong end call
        return [f.reversed() for f in real(image, emb, boxes, read_connection, fit)]

    monkeypatch.setattr("raiox.vision.analyze", wrong_way_round)
    out = await identify_module.identify(session, to_png(film.image), "film.png", 3, embedder=embedder)
    box = np.array(out.implants[0].box)
    assert platform_ok(box, film.boxes[0])
    assert out.implants[0].candidates[0].system == demo[0].id
