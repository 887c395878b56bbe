"""Write the example renders in docs/img (PYTHONPATH=src python bench/synth_examples.py)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from raiox.synth import demo_catalog, render_reference, render_scene

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cat = demo_catalog()
    specs = [cat[3].spec, cat[57].spec, cat[101].spec]
    scene = render_scene(specs, 7, {"size": (1200, 1600), "rotation": 2.0, "angulation": 6.0})
    img = cv2.cvtColor((scene.image * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(OUT / "synth-scene.png"), cv2.resize(img, (720, 540), interpolation=cv2.INTER_AREA))
    for box in scene.boxes:
        cv2.polylines(img, [np.round(box).astype(np.int32)], True, (0, 0, 255), 3)
        cv2.line(img, tuple(np.round(box[0]).astype(int)), tuple(np.round(box[1]).astype(int)), (0, 200, 0), 5)
    cv2.imwrite(str(OUT / "synth-scene-boxes.png"), cv2.resize(img, (720, 540), interpolation=cv2.INTER_AREA))
    groups = defaultdict(list)
    for s in cat:
        groups[s.group].append(s)
    rows = []
    for name in ["G01-apex", "G02-pitch", "G03-profile", "G04-cone_angle", "G05-connection"]:
        tiles = [cv2.resize(render_reference(s.spec, 0)[80:560], (144, 240), interpolation=cv2.INTER_AREA)
                 for s in groups[name][:4]]
        rows.append(np.hstack(tiles))
    gallery = (np.vstack(rows) * 255 + 0.5).astype(np.uint8)
    cv2.imwrite(str(OUT / "synth-lookalikes.png"), gallery)


if __name__ == "__main__":
    main()
