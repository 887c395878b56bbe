"""How a candidate's design differs from the first candidate's, worded for the reviewer ("difere do 1º só em: ângulo
do cone 24° (no 1º: 16°), plataforma 2,95 mm (no 1º: 3,0 mm) · só se vê com a plataforma descoberta").

The fields come from `raiox.catalog.lookalike` (siblings only: specs that differ in at most two parts). Naming the
difference tells the reviewer where to look on the film, or, for a connection under an abutment or crown, which
no film shows, what to ask the dentist.
"""

from __future__ import annotations

from raiox.catalog.lookalike import DEGREES, FIELDS, FRACTION, MM, look_alike, part
from raiox.review import i18n

NAMES = {  # the message id of each numeric field's name (the others are named by their values' labels)
    "connection.cone_angle_deg": "diff.cone_angle", "connection.platform_mm": "diff.platform",
    "connection.screw_mm": "diff.screw", "connection.depth_mm": "diff.connection_depth",
    "thread.pitch_mm": "diff.pitch", "thread.depth_mm": "diff.thread_depth", "collar.height_mm": "diff.collar_height",
    "collar.microthread_pitch_mm": "diff.microthread_pitch", "taper_start": "diff.taper_start",
    "apex_diameter_mm": "diff.apex_diameter",
}


def spec_difference(system, first) -> str | None:
    """The reviewer's line for candidate ``system`` against the first candidate ``first`` (catalog systems); None when
    either has no spec, they are the same system, or they are not siblings."""
    if system is None or first is None or system.id == first.id:
        return None
    found = look_alike(system.spec, first.spec)
    if found is None:
        return None
    if not found:
        return i18n.gettext("diff.same_design")
    items = ", ".join(_item(name, mine, theirs) for name, mine, theirs in found)
    text = i18n.gettext("diff.only_in", items=items)
    if all(part(name) == "connection" for name, _, _ in found):
        text += " · " + i18n.gettext("diff.hidden_connection")
    return text


def _item(name: str, mine, theirs) -> str:
    kind = FIELDS[name][1]
    if kind in (MM, DEGREES, FRACTION):
        return i18n.gettext("diff.item", what=f"{i18n.gettext(NAMES[name])} {_show(mine, kind)}",
                            first=_show(theirs, kind))
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
    text = i18n.decimal(text + "0" if text.endswith(".") else text)
    return f"{text}°" if kind == DEGREES else f"{text} mm"
