"""Vision: find implant fixtures in radiographs and embed them for catalog search.

Public API (see VISION-API contract): import from here, never from submodules.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raiox.vision.canonical import canonical_crop
    from raiox.vision.connection import bonus as connection_bonus
    from raiox.vision.connection import spec_class as connection_class
    from raiox.vision.detect import Detection, locate
    from raiox.vision.embedders import Embedder, get_embedder
    from raiox.vision.pipeline import FixtureEmbedding, analyze, embed_reference

# name -> (submodule, its name there), imported on first use: importing the package (`raiox.vision.cli`, for every
# `raiox` command's --help) loads neither OpenCV nor NumPy nor ONNX Runtime
_PUBLIC = {
    "canonical_crop": ("canonical", "canonical_crop"),
    "connection_bonus": ("connection", "bonus"),
    "connection_class": ("connection", "spec_class"),
    "Detection": ("detect", "Detection"),
    "locate": ("detect", "locate"),
    "Embedder": ("embedders", "Embedder"),
    "get_embedder": ("embedders", "get_embedder"),
    "FixtureEmbedding": ("pipeline", "FixtureEmbedding"),
    "analyze": ("pipeline", "analyze"),
    "embed_reference": ("pipeline", "embed_reference"),
    "read_image": ("io", "read_image"),  # image decoding
    "metadata_free": ("io", "metadata_free"),
    "ImageDecodeError": ("io", "ImageDecodeError"),
}

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
    if name not in _PUBLIC:
        raise AttributeError(f"module 'raiox.vision' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(import_module(f"raiox.vision.{module}"), attribute)
    globals()[name] = value  # found directly from now on
    return value
