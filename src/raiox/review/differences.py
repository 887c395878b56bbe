"""How a candidate's design differs from the first candidate's, for the reviewer ("difere do 1º só em: ângulo do
cone 16° (no 1º: 24°), plataforma 3,0 mm (no 1º: 2,95 mm) · só se vê com a plataforma descoberta").

Most wrong first answers are look-alike siblings: systems whose specs differ in one feature, often one the film
hides (a conical connection under an abutment or crown; docs/benchmarks.md, Vision). Naming that feature tells the
reviewer where to look on the film, or what to ask the dentist. Only the design is compared (a spec's length and
diameter are one size of its line); systems that differ in more than ``MAX_PARTS`` parts (connection, thread, apex,
collar, body) are not siblings and get no line.
"""

from __future__ import annotations

from collections.abc import Callable

from raiox.review import i18n

MAX_PARTS = 2  # siblings differ in one part (a connection sibling in its kind, platform, screw and depth)


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


# spec field -> (its value in a spec; the message id of its name, for numbers; how a value is shown: a number in
# millimetres, degrees or a fraction of the length, else the label of that prefix, "feature.profile.v")
MM, DEGREES, FRACTION = "mm", "deg", "fraction"
FIELDS: dict[str, tuple[Callable[[dict], object], str, str]] = {
    "connection.kind": (_get("connection.kind"), "", "connection"),
    "connection.cone_angle_deg": (_get("connection.cone_angle_deg"), "diff.cone_angle", DEGREES),
    "connection.platform_mm": (_get("connection.platform_mm"), "diff.platform", MM),
    "connection.screw_mm": (_get("connection.screw_mm"), "diff.screw", MM),
    "connection.depth_mm": (_get("connection.depth_mm"), "diff.connection_depth", MM),
    "thread.pitch_mm": (_get("thread.pitch_mm"), "diff.pitch", MM),
    "thread.profile": (_get("thread.profile"), "", "feature.profile"),
    "thread.leads": (_get("thread.leads", 1), "", "feature.leads"),
    "thread.depth_mm": (_get("thread.depth_mm"), "diff.thread_depth", MM),
    "thread.progressive": (_get("thread.progressive", False), "", "feature.progressive"),
    "apex.shape": (_get("apex.shape"), "", "feature.apex_shape"),
    "apex.hole": (_get("apex.hole", "none"), "", "feature.apex_hole"),
    "apex.flutes": (_get("apex.flutes", 0), "", "feature.flutes"),
    "collar.kind": (_get("collar.kind"), "", "feature.collar"),
    "collar.height_mm": (_get("collar.height_mm"), "diff.collar_height", MM),
    "collar.microthread_pitch_mm": (_get("collar.microthread_pitch_mm"), "diff.microthread_pitch", MM),
    "taper_start": (_get("taper_start"), "diff.taper_start", FRACTION),
    "apex_diameter_mm": (_get("apex_diameter_mm"), "diff.apex_diameter", MM),
}


def differences(spec: dict, first: dict) -> list[tuple[str, object, object]]:
    """(field, this spec's value, the first's value) for every design field both name and they name differently."""
    out = []
    for name, (value, _, _) in FIELDS.items():
        mine, theirs = value(spec), value(first)
        if mine is not None and theirs is not None and not _same(mine, theirs):
            out.append((name, mine, theirs))
    return out


def _same(a, b) -> bool:
    """Equal, numbers to the hundredth the line shows them in (2.951 mm is 2,95 mm)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return abs(a - b) < 0.005 if numbers else a == b


def part(field: str) -> str:
    """The part of the fixture a spec field describes (the body's taper and apex diameter: "body")."""
    return field.split(".")[0] if "." in field else "body"


def spec_difference(system, first) -> str | None:
    """The reviewer's line for candidate ``system`` against the first candidate ``first`` (catalog systems); None when
    either has no spec, they are the same system, or they differ in more than MAX_PARTS parts."""
    if system is None or first is None or system.id == first.id or not system.spec or not first.spec:
        return None
    found = differences(system.spec, first.spec)
    if not found:
        return i18n.gettext("diff.same_design")
    if len({part(name) for name, _, _ in found}) > MAX_PARTS:
        return None
    items = ", ".join(_item(name, mine, theirs) for name, mine, theirs in found)
    text = i18n.gettext("diff.only_in", items=items)
    if all(part(name) == "connection" for name, _, _ in found):
        text += " · " + i18n.gettext("diff.hidden_connection")
    return text


def _item(name: str, mine, theirs) -> str:
    _, label, kind = FIELDS[name]
    if kind in (MM, DEGREES, FRACTION):
        return i18n.gettext("diff.item", what=f"{i18n.gettext(label)} {_show(mine, kind)}", first=_show(theirs, kind))
    return i18n.gettext("diff.item", what=_label(kind, mine), first=_label(kind, theirs))


def _label(prefix: str, value) -> str:
    """A value's name from the catalog's feature / connection labels (the raw value where none exists)."""
    key = f"{prefix}.{str(value).lower()}"
    text = i18n.gettext(key)
    return str(value) if text == key else text


def _show(value, kind: str) -> str:
    """A number as the reviewer reads it: 3,0 mm / 2,95 mm, 11,5°, 50% do comprimento."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if kind == FRACTION:
        return i18n.gettext("diff.of_length", pct=f"{100 * number:.0f}")
    text = f"{number:g}" if kind == DEGREES else f"{number:.2f}".rstrip("0")
    text = (text + "0" if text.endswith(".") else text).replace(".", i18n.gettext("number.decimal_separator"))
    return f"{text}°" if kind == DEGREES else f"{text} mm"
