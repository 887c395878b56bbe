"""How two catalog systems' designs differ, field by field, from their geometry specs (`raiox.synth` spec schema).

Most wrong first answers of the search are look-alike siblings: systems whose specs differ in one part, often
one the film hides (a conical connection under an abutment or crown; docs/benchmarks.md, Vision). `look_alike`
names those fields for `/identify` and `raiox identify` (``differs_from_first``) and for the review panel
(`raiox.review.differences`, which words them). Only the design is compared: a spec's length and diameter are
one size of its line. Systems whose specs differ in more than ``MAX_PARTS`` parts (connection, thread, apex,
collar, body) are not siblings.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_PARTS = 2  # siblings differ in one part (a connection sibling in its kind, platform, screw and depth)
MM, DEGREES, FRACTION = "mm", "deg", "fraction"


def _get(path: str, default=None) -> Callable[[dict], object]:
    """A spec's value at ``path``; ``default`` where the spec names the part but not the field (one lead when a
    thread names none), None where it does not name the part at all."""
    *parents, key = path.split(".")

    def value(spec: dict):
        node = spec
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return None
        return default if node.get(key) is None else node[key]
    return value


# spec field -> (its value in a spec, how it reads: a number in millimetres, degrees or a fraction of the length, else
# the prefix of its values' labels in the panel's catalog, "feature.profile" -> "feature.profile.v")
FIELDS: dict[str, tuple[Callable[[dict], object], str]] = {
    "connection.kind": (_get("connection.kind"), "connection"),
    "connection.cone_angle_deg": (_get("connection.cone_angle_deg"), DEGREES),
    "connection.platform_mm": (_get("connection.platform_mm"), MM),
    "connection.screw_mm": (_get("connection.screw_mm"), MM),
    "connection.depth_mm": (_get("connection.depth_mm"), MM),
    "thread.pitch_mm": (_get("thread.pitch_mm"), MM),
    "thread.profile": (_get("thread.profile"), "feature.profile"),
    "thread.leads": (_get("thread.leads", 1), "feature.leads"),
    "thread.depth_mm": (_get("thread.depth_mm"), MM),
    "thread.progressive": (_get("thread.progressive", False), "feature.progressive"),
    "apex.shape": (_get("apex.shape"), "feature.apex_shape"),
    "apex.hole": (_get("apex.hole", "none"), "feature.apex_hole"),
    "apex.flutes": (_get("apex.flutes", 0), "feature.flutes"),
    "collar.kind": (_get("collar.kind"), "feature.collar"),
    "collar.height_mm": (_get("collar.height_mm"), MM),
    "collar.microthread_pitch_mm": (_get("collar.microthread_pitch_mm"), MM),
    "taper_start": (_get("taper_start"), FRACTION),
    "apex_diameter_mm": (_get("apex_diameter_mm"), MM),
}


def differences(spec: dict, first: dict) -> list[tuple[str, object, object]]:
    """(field, this spec's value, the first's value) for every design field both name and they name differently."""
    out = []
    for name, (value, _) in FIELDS.items():
        mine, theirs = value(spec), value(first)
        if mine is not None and theirs is not None and not _same(mine, theirs):
            out.append((name, mine, theirs))
    return out


def _same(a, b) -> bool:
    """Equal, numbers to the hundredth (2.951 mm is 2.95 mm)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return abs(a - b) < 0.005 if numbers else a == b


def part(field: str) -> str:
    """The part of the fixture a spec field describes (the body's taper and apex diameter: "body")."""
    return field.split(".")[0] if "." in field else "body"


def look_alike(spec: dict | None, first: dict | None) -> list[tuple[str, object, object]] | None:
    """``differences`` of a sibling of the first (empty: the same design); None when either spec is missing or
    they differ in more than MAX_PARTS parts."""
    if not spec or not first:
        return None
    found = differences(spec, first)
    return None if len({part(name) for name, _, _ in found}) > MAX_PARTS else found
