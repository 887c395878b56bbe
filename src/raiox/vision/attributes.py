"""A training system's design as classification targets (auxiliary heads next to ArcFace).

Metric learning alone meets a look-alike feature only in the few families that vary it (one family in ten
varies the cone angle); a head per design feature asks every training crop what its connection, cone,
apex, thread and collar are, so the embedding has to carry what tells look-alike siblings apart. The
targets are read from the specs, which any rendered dataset can draw again from its seed
(``raiox.vision.datagen.dataset_specs``). Serving never sees the heads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

HEADS: dict[str, tuple[tuple, Callable[[dict], object]]] = {  # name -> (classes, the spec's class)
    "connection": (("external_hex", "internal_hex", "conical", "tri_channel"), lambda s: s["connection"]["kind"]),
    "cone_angle": ((8.0, 11.0, 11.5, 16.0, 22.0, 24.0), lambda s: s["connection"].get("cone_angle_deg")),
    "apex_shape": (("flat", "dome", "cone"), lambda s: s["apex"]["shape"]),
    "apex_hole": (("none", "round", "oblong"), lambda s: s["apex"].get("hole", "none")),
    "flutes": ((0, 2, 3, 4, 6), lambda s: s["apex"].get("flutes", 0)),
    "profile": (("v", "square", "buttress", "reverse_buttress", "knife"), lambda s: s["thread"]["profile"]),
    "leads": ((1, 2, 3), lambda s: s["thread"].get("leads", 1)),
    "collar": (("none", "machined", "microthread", "tulip"), lambda s: s["collar"]["kind"]),
    "tapered": ((False, True), lambda s: s["taper_start"] < 0.99),
    "progressive": ((False, True), lambda s: bool(s["thread"].get("progressive", False))),
}
SIZES = tuple(len(classes) for classes, _ in HEADS.values())


def attribute_row(spec: dict) -> list[int]:
    """The class index of every head for one spec; -1 where the head does not apply (a cone angle of a
    hex connection) or the value is outside its classes."""
    row = []
    for classes, value in HEADS.values():
        v = value(spec)
        row.append(classes.index(v) if v in classes else -1)
    return row


def attribute_table(data_dir: Path) -> np.ndarray:
    """(classes, len(HEADS)) int64 targets of a rendered dataset, row = label."""
    from raiox.vision.datagen import dataset_specs

    return np.array([attribute_row(s) for s in dataset_specs(data_dir)], np.int64).reshape(-1, len(HEADS))
