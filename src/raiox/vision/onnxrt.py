"""One cached ONNX Runtime CPU session per model file, for the small nets beside the embedder (localiser, ends,
connection reader): ``RAIOX_ONNX_THREADS`` intra-op threads (default 1), one inter-op thread."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=8)
def session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("RAIOX_ONNX_THREADS", "1"))
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
