"""Implant geometry spec: the published JSON Schema plus checks JSON Schema cannot express."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

SPEC_SCHEMA: dict = json.loads(resources.files(__package__).joinpath("spec.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SPEC_SCHEMA)


def validate_spec(spec: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``spec`` is a valid implant geometry spec."""
    _VALIDATOR.validate(spec)
    if spec["apex_diameter_mm"] > spec["diameter_mm"] + 1e-9:
        raise jsonschema.ValidationError("apex_diameter_mm must not exceed diameter_mm")
    if 2 * spec["thread"]["depth_mm"] >= spec["diameter_mm"]:
        raise jsonschema.ValidationError("thread depth_mm leaves no core (2 * depth >= diameter)")
    conn = spec["connection"]
    if conn["kind"] != "external_hex" and conn.get("platform_mm", 0) >= spec["diameter_mm"]:
        raise jsonschema.ValidationError("connection platform_mm must be smaller than diameter_mm")
    collar = spec["collar"]
    if collar.get("height_mm", 0) >= spec["length_mm"] / 2:
        raise jsonschema.ValidationError("collar height_mm must be less than half the length")


def with_size(spec: dict, diameter_mm: float, length_mm: float) -> dict:
    """The same design at another catalogue size: the apex diameter scales with the body; the
    thread, connection and collar keep their sizes unless the new body cannot hold them (then
    they shrink just enough for the spec to stay valid)."""
    out = json.loads(json.dumps(spec))
    d = float(diameter_mm)
    out["diameter_mm"] = d
    out["length_mm"] = float(length_mm)
    out["apex_diameter_mm"] = round(min(spec["apex_diameter_mm"] * d / spec["diameter_mm"], d), 3)
    out["thread"]["depth_mm"] = round(min(out["thread"]["depth_mm"], 0.45 * d), 3)
    conn = out["connection"]
    if conn["kind"] != "external_hex" and conn.get("platform_mm", 0) >= d:
        conn["platform_mm"] = round(d - 1.0, 2)
    collar = out["collar"]
    if collar.get("height_mm", 0) >= out["length_mm"] / 2:
        collar["height_mm"] = round(out["length_mm"] / 2 - 0.1, 2)
    return out
