"""Vision: find implant fixtures in radiographs and embed them for catalog search.

Public API (see VISION-API contract): import from here, never from submodules.
"""

from raiox.vision.canonical import canonical_crop
from raiox.vision.connection import bonus as connection_bonus
from raiox.vision.connection import spec_class as connection_class
from raiox.vision.detect import Detection, locate
from raiox.vision.embedders import Embedder, get_embedder
from raiox.vision.pipeline import FixtureEmbedding, analyze, embed_reference

__all__ = [
    "Detection",
    "Embedder",
    "FixtureEmbedding",
    "analyze",
    "canonical_crop",
    "connection_bonus",
    "connection_class",
    "embed_reference",
    "get_embedder",
    "locate",
]


def __getattr__(name: str):
    if name in ("read_image", "metadata_free", "ImageDecodeError"):  # raiox.vision.io (image decoding)
        from raiox.vision import io

        return getattr(io, name)
    raise AttributeError(f"module 'raiox.vision' has no attribute {name!r}")
