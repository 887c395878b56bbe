"""From a radiograph to one embedding per implant fixture."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from raiox.vision import connection, features, threads
from raiox.vision.canonical import canonical_crop
from raiox.vision.detect import Detection, locate, orient_box, reverse_box
from raiox.vision.embedders import Embedder, crop_size
from raiox.vision.ranking import Reads, checks_orientation


@dataclass
class FixtureEmbedding:
    box: np.ndarray  # (4, 2), platform edge first
    confidence: float
    embedding: np.ndarray  # (dim,) float32, L2-normalised
    connection: np.ndarray | None = None  # (len(connection.CLASSES),) probabilities; None without the reader
    reverse: "FixtureEmbedding | None" = None  # the same fixture turned end for end (located fixtures only)
    features: dict | None = None  # design feature -> log-probabilities (raiox.vision.features); None without the reader
    turns: threads.Turns | None = None  # thread count (raiox.vision.threads); None when not read

    def reads(self) -> Reads:
        """What the catalog search re-ranks this fixture's candidates by."""
        return Reads(self.connection, self.features, self.turns)

    def reversed(self) -> "FixtureEmbedding":
        """The fixture read the other way up: platform and apex ends swapped (the localiser's end call
        overruled, see `raiox.vision.ranking.ORIENTATION_MARGIN`)."""
        if self.reverse is None:
            raise ValueError("this fixture carries no reverse reading (a given box, or a reference)")
        return replace(self.reverse, confidence=self.confidence, reverse=replace(self, reverse=None))


def load_readers(model_id: str) -> None:
    """The small models beside the embedder of ``model_id`` (connection, feature and ends readers) load, and the
    readers' metadata says what they read: a file ONNX Runtime cannot open, or one whose metadata is broken, is a
    ConfigError naming its setting (``onnxrt.load`` / ``onnxrt.unusable``), not every analysis's traceback."""
    from raiox.vision import ends
    from raiox.vision.onnxrt import session

    for path in (connection.model_path(), features.model_path(model_id), ends.model_path()):
        if path is not None:
            session(str(path))
    if (path := connection.model_path()) is not None:
        connection.zoom_of(path)
    if (path := features.model_path(model_id)) is not None:
        features.heads_of(path)


def as_box(image: np.ndarray, box: Sequence, fit: bool = False) -> np.ndarray:
    """A manual box: (4, 2) oriented corners (platform edge first) are kept as given; an
    axis-aligned ``(x0, y0, x1, y1)`` gets its long axis and platform end from the image, or with FIT the
    localiser's box of the implant it frames (``fit_box``)."""
    arr = np.asarray(box, dtype=np.float32)
    if arr.shape == (4, 2):
        return arr
    if arr.shape == (4,):
        return fit_box(image, arr) if fit else orient_box(image, arr)
    raise ValueError(f"a box is (4, 2) corners or (x0, y0, x1, y1), got shape {arr.shape}")


FIT_IOU = 0.5  # a located box whose bounds overlap a drawn box this much is the implant the box frames
FIT_MARGIN = 0.5  # the film around a drawn box searched again (share of its size each side) when the first pass missed


def _bounds_iou(xyxy: np.ndarray, box: np.ndarray) -> float:
    lo, hi = np.asarray(box).min(axis=0), np.asarray(box).max(axis=0)
    ix = max(0.0, min(xyxy[2], hi[0]) - max(xyxy[0], lo[0]))
    iy = max(0.0, min(xyxy[3], hi[1]) - max(xyxy[1], lo[1]))
    inter = ix * iy
    union = (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]) + float(np.prod(hi - lo)) - inter
    return inter / union if union > 0 else 0.0


def _best_fit(found: list[Detection], xyxy: np.ndarray, offset: np.ndarray) -> np.ndarray | None:
    scored = [(_bounds_iou(xyxy, d.box + offset), d.box + offset) for d in found]
    iou, box = max(scored, key=lambda s: s[0], default=(0.0, None))
    return box if iou >= FIT_IOU else None


def fit_box(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """An axis-aligned box drawn around an implant (an operator's mark), as the oriented box the localiser gives
    that implant: the crop is then canonicalised as the catalog's references were (rotated to the implant's own
    axis, not the drawn box's). The localiser's box is taken when its bounds overlap the drawn box by
    ``FIT_IOU``, from the whole film or else from the drawn box's surroundings looked at alone (an implant the
    first pass missed); when neither matches, the drawn box itself (``orient_box``)."""
    xyxy = np.asarray(xyxy, dtype=np.float32)
    box = _best_fit(locate(image), xyxy, np.zeros(2, np.float32))
    if box is None:
        h, w = np.asarray(image).shape[:2]
        pad = FIT_MARGIN * (xyxy[2:] - xyxy[:2])
        x0, y0 = np.maximum(xyxy[:2] - pad, 0).astype(int)
        x1, y1 = np.minimum(xyxy[2:] + pad, [w, h]).astype(int)
        box = _best_fit(locate(np.asarray(image)[y0:y1, x0:x1]), xyxy, np.array([x0, y0], np.float32))
    return np.asarray(box, np.float32) if box is not None else orient_box(image, xyxy)


def analyze(image: np.ndarray, embedder: Embedder, boxes: Sequence | None = None,
            read_connection: bool = True, fit: bool = False) -> list[FixtureEmbedding]:
    """Locate (or take the given boxes, confidence 1.0), canonicalise and embed every fixture, and read its
    connection from the platform end (``raiox.vision.connection``), its design features from its embedding
    (``raiox.vision.features``) and its thread count from its silhouette (``raiox.vision.threads``); None when
    their model is switched off, the box is too short to count, or ``read_connection`` is False (a catalog
    reference's connection, features and line come from its system's spec and attributes). FIT: given
    axis-aligned boxes are fitted to the implant they frame (``fit_box``).

    A located fixture whose ends the localiser is not sure of (``ranking.checks_orientation``) also carries its
    ``reverse`` reading (box turned end for end, its crop embedded; connection not read), so the catalog search can
    overrule the localiser's platform-end call where the other way up matches the catalog much better."""
    located = boxes is None
    found = locate(image) if located else [Detection(as_box(image, b, fit), 1.0) for b in boxes]
    if not found:
        return []
    own = [d.box for d in found]
    checked = [i for i, d in enumerate(found) if located and read_connection and checks_orientation(d)]
    turned = [reverse_box(own[i]) for i in checked]
    vectors = embedder.embed([canonical_crop(image, b, crop_size(embedder)) for b in own + turned])
    reads = connection.read(image, own) if read_connection else [None] * len(own)
    feats = features.read(vectors[:len(own)], embedder.model_id) if read_connection else [None] * len(own)
    counts = [threads.read(image, b) for b in own] if read_connection and threads.enabled() else [None] * len(own)
    out = [FixtureEmbedding(b, d.confidence, v, c, features=f, turns=t)
           for d, b, v, c, f, t in zip(found, own, vectors, reads, feats, counts)]
    for k, (i, box) in enumerate(zip(checked, turned)):  # nothing is read: the connection reader costs more than
        # the rest of a reverse reading, and a fixture is turned in about 1 of 200 (then searched without the re-rank)
        out[i].reverse = FixtureEmbedding(box, found[i].confidence, vectors[len(own) + k], None)
    return out


def embed_reference(image: np.ndarray, embedder: Embedder) -> np.ndarray:
    """Catalog reference vector: the most confident fixture, or the whole image if none is found."""
    found = analyze(image, embedder, read_connection=False)
    if found:
        return found[0].embedding
    h, w = np.asarray(image).shape[:2]
    return analyze(image, embedder, boxes=[(0, 0, w, h)], read_connection=False)[0].embedding
