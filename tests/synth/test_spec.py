import copy

import jsonschema
import pytest

from raiox.synth import SPEC_SCHEMA, demo_catalog, validate_spec, with_size


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SPEC_SCHEMA)
    assert set(SPEC_SCHEMA["required"]) >= {"length_mm", "diameter_mm", "apex_diameter_mm", "taper_start",
                                            "collar", "thread", "apex", "connection"}


def test_every_demo_spec_validates():
    for system in demo_catalog():
        validate_spec(system.spec)


def _good():
    return copy.deepcopy(demo_catalog()[0].spec)


@pytest.mark.parametrize("mutate", [
    lambda s: s.pop("thread"),
    lambda s: s.__setitem__("length_mm", 40),
    lambda s: s["thread"].__setitem__("profile", "trapezoid"),
    lambda s: s["thread"].__setitem__("leads", 1.5),
    lambda s: s["apex"].__setitem__("shape", "pointy"),
    lambda s: s["connection"].__setitem__("kind", "octagon"),
    lambda s: s["collar"].__setitem__("kind", "hyperbolic"),
    lambda s: s.__setitem__("colour", "red"),
    lambda s: s.__setitem__("apex_diameter_mm", s["diameter_mm"] + 0.5),
    lambda s: s["thread"].__setitem__("depth_mm", s["diameter_mm"] / 2),
])
def test_bad_specs_are_rejected(mutate):
    spec = _good()
    mutate(spec)
    with pytest.raises(jsonschema.ValidationError):
        validate_spec(spec)


def test_with_size_keeps_the_design():
    spec = _good()
    other = with_size(spec, 5.0, 13.0)
    validate_spec(other)
    assert other["diameter_mm"] == 5.0 and other["length_mm"] == 13.0
    assert other["thread"] == spec["thread"] and other["apex"] == spec["apex"]
    assert other["apex_diameter_mm"] / 5.0 == pytest.approx(spec["apex_diameter_mm"] / spec["diameter_mm"], rel=1e-2)


def test_with_size_stays_valid_across_the_catalogue_range():
    for system in demo_catalog():
        for d in (2.9, 6.0):
            for length in (6.0, 18.0):
                validate_spec(with_size(system.spec, d, length))
