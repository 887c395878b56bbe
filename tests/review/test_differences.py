"""The reviewer's line on how a candidate's design differs from the first candidate's."""

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from raiox.catalog import lookalike
from raiox.catalog.lookalike import FIELDS
from raiox.review import i18n
from raiox.review.differences import NAMES, spec_difference
from raiox.synth import demo_catalog

SPEC = {"length_mm": 10.0, "diameter_mm": 4.3, "apex_diameter_mm": 3.5, "taper_start": 0.5,
        "collar": {"kind": "machined", "height_mm": 1.2},
        "thread": {"profile": "v", "pitch_mm": 0.8, "depth_mm": 0.4, "leads": 1},
        "apex": {"shape": "dome", "hole": "none", "flutes": 0},
        "connection": {"kind": "conical", "cone_angle_deg": 16.0, "depth_mm": 2.4, "platform_mm": 3.0, "screw_mm": 1.6}}


def system(sid: str, **changes) -> SimpleNamespace:
    spec = json.loads(json.dumps(SPEC))
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = spec
        for name in parents:
            node = node[name]
        node[key] = value
    return SimpleNamespace(id=sid, spec=spec)


def test_a_cone_angle_sibling_names_what_differs_and_that_the_film_hides_it_under_a_restoration():
    first = system("a")
    other = system("b", connection__cone_angle_deg=24.0, connection__platform_mm=2.95, connection__screw_mm=1.8)
    assert spec_difference(other, first) == (
        "difere do 1º só em: ângulo do cone 24° (no 1º: 16°), plataforma 2,95 mm (no 1º: 3,0 mm), "
        "parafuso 1,8 mm (no 1º: 1,6 mm) · só se vê com a plataforma descoberta")


def test_body_features_are_named_by_their_labels_and_sizes_are_not_compared():
    first = system("a")
    other = system("b", thread__profile="square", length_mm=13.0, diameter_mm=5.0)
    assert spec_difference(other, first) == "difere do 1º só em: rosca quadrada (no 1º: rosca em V)"
    assert spec_difference(system("c", length_mm=8.0), first) == "mesmo desenho do 1º (só os tamanhos podem diferir)"
    assert lookalike.differences(system("e", connection__platform_mm=3.001).spec, first.spec) == []  # shown alike
    taper = spec_difference(system("d", taper_start=1.0, apex_diameter_mm=4.3), first)
    assert taper == ("difere do 1º só em: conicidade a partir de 100% do comprimento (no 1º: 50% do comprimento), "
                     "diâmetro apical 4,3 mm (no 1º: 3,5 mm)")


def test_defaults_count_as_values_and_english_reads_the_same_facts(monkeypatch):
    first = system("a")
    del first.spec["thread"]["leads"]  # one lead when unnamed
    other = system("b", thread__leads=2)
    assert spec_difference(other, first) == "difere do 1º só em: rosca de 2 entradas (no 1º: rosca de 1 entrada)"
    monkeypatch.setattr(i18n, "gettext", functools.partial(i18n.gettext, lang="en"))
    assert spec_difference(other, first) == "differs from #1 only in: double-lead thread (#1: single-lead thread)"
    cone = system("c", connection__cone_angle_deg=11.5)
    assert spec_difference(cone, first) == ("differs from #1 only in: cone angle 11.5° (#1: 16°) · "
                                            "visible only with the platform uncovered")


def test_no_line_for_the_first_itself_for_unrelated_systems_or_without_specs():
    first = system("a")
    assert spec_difference(first, first) is None
    unrelated = system("b", thread__profile="knife", apex__shape="flat", collar__kind="tulip")
    assert len(lookalike.differences(unrelated.spec, first.spec)) == 3
    assert spec_difference(unrelated, first) is None  # three parts differ: not a sibling
    two_parts = system("b", thread__profile="knife", apex__shape="flat")
    assert spec_difference(two_parts, first) == ("difere do 1º só em: rosca em lâmina (no 1º: rosca em V), "
                                                 "ápice plano (no 1º: ápice arredondado)")
    assert spec_difference(SimpleNamespace(id="c", spec=None), first) is None
    partial = SimpleNamespace(id="e", spec={"connection": dict(SPEC["connection"], cone_angle_deg=24.0)})
    holed = system("f", apex__hole="round", thread__leads=2)
    assert lookalike.differences(partial.spec, holed.spec) == [("connection.cone_angle_deg", 24.0, 16.0)]
    # a spec that names no apex and no thread is not given the default hole ("none") or lead (1) against the first's
    assert spec_difference(system("d"), None) is None


@pytest.mark.parametrize("lang", ["pt_BR", "en"])
def test_every_look_alike_pair_of_the_demo_catalog_gets_a_line_with_real_labels(lang, monkeypatch):
    """Each sibling pair differs in a few design fields, every one of them shown with a label of the catalog."""
    monkeypatch.setattr(i18n, "gettext", functools.partial(i18n.gettext, lang=lang))
    catalog = json.loads((Path(i18n.__file__).parent / "locale" / f"{lang}.json").read_text(encoding="utf-8"))
    numeric = {name for name, (_, kind) in FIELDS.items()
               if kind in (lookalike.MM, lookalike.DEGREES, lookalike.FRACTION)}
    assert set(NAMES) == numeric and all(NAMES[name] in catalog for name in numeric)
    groups: dict[str, list] = {}
    for s in demo_catalog():
        groups.setdefault(s.group, []).append(SimpleNamespace(id=s.id, spec=s.spec))
    for members in groups.values():
        first, *others = members
        for other in others:
            found = lookalike.differences(other.spec, first.spec)
            assert len({lookalike.part(name) for name, _, _ in found}) == 1, (first.id, other.id, found)
            assert spec_difference(other, first).startswith("difere do 1º só em:" if lang == "pt_BR" else "differs")
            for name, mine, theirs in found:
                kind = FIELDS[name][1]
                if name in NAMES:
                    assert NAMES[name] in catalog
                else:
                    for value in (mine, theirs):
                        assert f"{kind}.{str(value).lower()}" in catalog, (name, value)
