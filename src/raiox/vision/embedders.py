"""Embedding backends, chosen by a spec string (``RAIOX_EMBEDDER``).

- ``raiox-vN`` (``shipped_embedders()``; default ``DEFAULT_EMBEDDER``, raiox-v12: raiox-v10 and a 256 x 128
  fine-tune of it on other systems as one ensemble file): ONNX models shipped in ``raiox/vision/models``, each
  with its model card beside it.
- ``onnx:PATH``: any ONNX image encoder. Input: one float32 tensor (N, C, H, W), C = 1 or 3
  (grayscale is repeated), values in [0, 1] (canonical crop: metal bright, platform up); any
  normalisation must be inside the graph. Output: first output, (N, D) float32; rows are
  L2-normalised here. H and W are read from the model (fixed sizes) or default to 192 x 64. A
  one-channel model with fixed H and W gets the canonical crop cut at that size (``crop_size``);
  any other model gets the 192 x 64 canonical crop, padded to its aspect and resampled.
- ``open_clip:MODEL/TAG``: an open_clip image tower run with torch (optional extra); TAG
  ``none`` builds it untrained (``pretrained=None``). Weights are never downloaded here: TAG must
  name weights already in the local open_clip cache.

Every backend has a ``model_id``; vectors of different ids must never be compared.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np
import structlog

from raiox.vision.canonical import CROP_H, CROP_W

log = structlog.get_logger(__name__)
DEFAULT_EMBEDDER = "raiox-v12"
FALLBACK_EMBEDDER = "raiox-v0"
BATCH = 64


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


def crop_size(embedder) -> tuple[int, int]:
    """(rows, cols) of the canonical crop ``embedder`` takes (default 192 x 64)."""
    return tuple(getattr(embedder, "crop_size", (CROP_H, CROP_W)))


def unfit_for_catalog(embedder) -> str | None:
    """Why ``embedder``'s vectors cannot go into the catalog, whose vectors are ``EMBEDDING_DIM`` finite numbers
    (a search with another would be refused, every reference's insert fail): from its vector of one blank crop of
    its input size. None when they can."""
    from raiox.models.base import EMBEDDING_DIM

    vector = np.asarray(embedder.embed([np.zeros(crop_size(embedder), np.float32)]))
    if vector.shape != (1, EMBEDDING_DIM):
        return f"it gives {vector.size} numbers per crop, the catalog's vectors have {EMBEDDING_DIM}"
    if not np.isfinite(vector).all():
        return "its vector of a blank crop is not all finite numbers (NaN or infinity)"
    return None


def fit_crop(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad a crop with zeros to the target aspect (centred), then resample to (height, width)."""
    crop = np.asarray(crop, dtype=np.float32)
    h, w = crop.shape
    if (h, w) == (height, width):
        return crop
    target_w = h * width / height
    if target_w > w:
        pad = int(round((target_w - w) / 2))
        crop = np.pad(crop, ((0, 0), (pad, pad)))
    else:
        pad = int(round((w * height / width - h) / 2))
        crop = np.pad(crop, ((pad, pad), (0, 0)))
    interp = cv2.INTER_AREA if crop.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.array(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[norms[:, 0] < 1e-12] = np.eye(1, vectors.shape[1], dtype=np.float32)  # featureless input
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class OnnxEmbedder:
    """An ONNX image encoder run with ONNX Runtime (CPU)."""

    def __init__(self, path: str | Path, model_id: str):
        from raiox.vision.onnxrt import load

        self.session = load(path, "RAIOX_EMBEDDER" if str(model_id).startswith("onnx:") else None)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ValueError(f"{path}: not an image embedding model (its input {inp.name!r} is {shape}, not images "
                             "(N, C, H, W))")
        self.channels = shape[1] if isinstance(shape[1], int) else 1
        self.height = shape[2] if isinstance(shape[2], int) else CROP_H
        self.width = shape[3] if isinstance(shape[3], int) else CROP_W
        # a fixture net (one channel, fixed size) sees the canonical crop cut at its own input size
        fixed = all(isinstance(v, int) for v in shape[1:4])
        self.crop_size = (self.height, self.width) if fixed and self.channels == 1 else (CROP_H, CROP_W)
        self.model_id = model_id
        try:  # a model that does not run on a crop (another input type, a graph that fails) is refused now, not
            self.dim = self._probe_dim()  # in the middle of every case's analysis
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors share no public base class
            from raiox.kit.errors import first_line

            raise ValueError(f"{path}: not an image embedding model (it does not run on a crop: "
                             f"{first_line(exc)})") from None

    def _probe_dim(self) -> int:
        return int(self._run(np.zeros((1, self.height, self.width), np.float32)).shape[1])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        x = np.repeat(batch[:, None], self.channels, axis=1)
        return self.session.run(None, {self.input_name: x})[0].reshape(len(batch), -1)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        fitted = np.stack([fit_crop(c, self.height, self.width) for c in crops])
        out = [self._run(fitted[i : i + BATCH]) for i in range(0, len(fitted), BATCH)]
        return l2_normalise(np.concatenate(out))


_TORCHVISION_STUB = None  # keeps the operator declarations below alive


def import_open_clip():
    """``import open_clip``, also beside a torchvision wheel whose C++ ops cannot load.

    PyPI's torchvision is built against CUDA torch; beside the CPU torch its ``_C`` library does not
    load, and torchvision <= 0.29 then fails at import with ``operator torchvision::nms does not
    exist`` because it registers fake kernels for ``nms``/``qnms`` without checking that its ops
    loaded (pytorch/vision#9337; upstream fix pytorch/vision#9649 guards them). open_clip needs only
    torchvision's Python transforms, so in that case we declare the two operator schemas (no kernels:
    calling ``torchvision.ops.nms`` still raises torchvision's own "Couldn't load custom C++ ops")
    and import again.
    """
    import sys

    import torch

    global _TORCHVISION_STUB
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc) or _TORCHVISION_STUB is not None:
            raise
        log.warning("open_clip.torchvision_without_ops", error=str(exc))
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _TORCHVISION_STUB = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _TORCHVISION_STUB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision  # noqa: F401
    import open_clip

    return open_clip


class OpenClipEmbedder:
    """An open_clip image tower (torch; optional ``open_clip`` extra); TAG ``none``: untrained."""

    def __init__(self, model_name: str, tag: str | None):
        import torch

        open_clip = import_open_clip()

        pretrained = None if tag in (None, "", "none") else tag
        self.model = open_clip_model(open_clip, model_name, pretrained).eval()
        visual = self.model.visual
        size = visual.image_size if hasattr(visual, "image_size") else 224
        self.height, self.width = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        self.model_id = f"open_clip:{model_name}/{tag or 'none'}"
        self.dim = int(self.embed([np.zeros((CROP_H, CROP_W), np.float32)]).shape[1])

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        batch = np.stack([fit_crop(c, self.height, self.width) for c in crops])
        x = torch.from_numpy(batch)[:, None].repeat(1, 3, 1, 1)
        with torch.no_grad():
            out = self.model.encode_image((x - self.mean) / self.std)
        return l2_normalise(out.numpy())


class UnknownOpenClipModel(RuntimeError):
    """open_clip knows no model of that name (a RuntimeError, like open_clip's own, whose text lists every model)."""


def open_clip_model(open_clip, name: str, pretrained: str | None):
    """``open_clip.create_model(name, pretrained=pretrained)``; a plain name open_clip does not know is an
    ``UnknownOpenClipModel`` saying so in a line (names with a scheme, ``hf-hub:...``, are open_clip's to check)."""
    if ":" not in name and name not in open_clip.list_models():
        raise UnknownOpenClipModel(f"unknown open_clip model {name!r}: open_clip.list_models() names the "
                                   f"{len(open_clip.list_models())} it knows (e.g. ViT-B-32)")
    return open_clip.create_model(name, pretrained=pretrained)


def shipped_model(name: str) -> Path | None:
    path = resources.files("raiox.vision") / "models" / f"{name}.onnx"
    return Path(str(path)) if path.is_file() else None


def shipped_embedders() -> list[str]:
    """The ``raiox-vN`` embedders shipped in ``raiox/vision/models``, newest first."""
    models = resources.files("raiox.vision") / "models"
    names = [Path(str(p)).stem for p in models.iterdir() if p.name.startswith("raiox-v") and p.name.endswith(".onnx")]
    return sorted(names, key=lambda n: int(n.removeprefix("raiox-v")), reverse=True)


def configured_spec() -> str:
    try:
        from raiox.kit.settings import get_settings
    except ImportError:
        return os.environ.get("RAIOX_EMBEDDER") or DEFAULT_EMBEDDER
    return getattr(get_settings(), "embedder", None) or DEFAULT_EMBEDDER


def get_embedder(spec: str | None = None) -> Embedder:
    """The embedder named by ``spec`` (default: settings / ``RAIOX_EMBEDDER``), cached."""
    return _build(spec or configured_spec())


@lru_cache(maxsize=8)
def _build(spec: str) -> Embedder:
    if spec.startswith("onnx:"):
        path = Path(spec[5:]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"embedder model not found: {path}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return OnnxEmbedder(path, model_id=f"onnx:{path.name}#{digest}")
    if spec.startswith("open_clip:"):
        name, _, tag = spec[len("open_clip:") :].partition("/")
        return OpenClipEmbedder(name, tag or None)
    path = shipped_model(spec)
    if path is None and spec == DEFAULT_EMBEDDER:
        log.warning("embedder.fallback", wanted=spec, using=FALLBACK_EMBEDDER, reason="trained model not shipped yet")
        return _build(FALLBACK_EMBEDDER)
    if path is None:
        raise ValueError(f"unknown embedder {spec!r}: use {', '.join(shipped_embedders())}, onnx:PATH or "
                         "open_clip:MODEL/TAG")
    return OnnxEmbedder(path, model_id=spec)
