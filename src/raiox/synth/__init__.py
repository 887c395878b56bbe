"""Synthetic implant radiographs: geometry spec, renderer and the demo catalogue."""

from .io_png import to_png
from .scene import Scene, render_fixture_crop, render_reference, render_reference_scene, render_scene
from .spec import SPEC_SCHEMA, validate_spec, with_size

__all__ = ["SPEC_SCHEMA", "Scene", "render_fixture_crop", "render_reference", "render_reference_scene", "render_scene",
           "to_png", "validate_spec", "with_size"]

from .catalog import ASPECTS, DemoSystem, demo_catalog, describe, line_size, reference_count, reference_plan  # noqa: E402

__all__ += ["ASPECTS", "DemoSystem", "demo_catalog", "describe", "line_size", "reference_count", "reference_plan"]
