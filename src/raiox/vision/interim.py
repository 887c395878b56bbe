"""Build the interim embedder raiox-v0: a fixed, seeded random projection of the pooled crop.

Mirror-symmetric projection (invariant to left-right flips), centred, L2-normalised. It only
keeps the pipeline running until a trained model ships; it needs the ``onnx`` package (build time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raiox.vision.canonical import CROP_H, CROP_W

POOL = 4
DIM = 512


def build_interim(path: Path, seed: int = 20261128) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = CROP_H // POOL, CROP_W // POOL
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((h, w, DIM)).astype(np.float32)
    proj = (((proj + proj[:, ::-1]) / 2).reshape(h * w, DIM) / np.sqrt(h * w)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "proj"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "raiox-v0",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, CROP_H, CROP_W])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])],
        [numpy_helper.from_array(proj, "proj"), numpy_helper.from_array(np.array([1], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="raiox")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
