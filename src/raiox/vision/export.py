"""Export an open_clip image tower to ONNX (needs the ``open_clip`` extra: torch + open_clip), and the checked
export the small trained nets share (``export_checked``; the ``train`` extra).

The exported open_clip graph takes the canonical crop contract of ``onnx:PATH`` embedders: (N, 1, H, W)
float32 in [0, 1]; it repeats the channel, applies the model's mean/std and L2-normalises.
"""

from __future__ import annotations

from pathlib import Path


def export_checked(net, probe, path: Path, input_name: str, metadata: dict[str, str], what: str) -> Path:
    """``net`` to ONNX (``input_name`` -> ``logits``, batch axis dynamic) with ``metadata`` in the file; refused
    when ONNX Runtime's output on ``probe`` differs from torch's."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    net.eval()
    torch.onnx.export(net, probe, str(path), input_names=[input_name], output_names=["logits"],
                      dynamic_axes={input_name: {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    with torch.no_grad():
        want = net(probe).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {input_name: probe.numpy()})[0]
    if not np.allclose(want, got, atol=1e-4):
        raise RuntimeError(f"ONNX export of the {what} differs from torch")
    return path


def export_open_clip(spec: str, out: Path) -> Path:
    import torch

    from raiox.vision.embedders import import_open_clip, open_clip_model

    open_clip = import_open_clip()

    name, _, tag = spec.partition("/")
    model = open_clip_model(open_clip, name, None if tag in ("", "none") else tag).eval()
    visual = model.visual
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    mean = torch.tensor(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)

    class Gray(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual

        def forward(self, image):
            x = (image.repeat(1, 3, 1, 1) - mean) / std
            return torch.nn.functional.normalize(self.visual(x), dim=1)

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Gray().eval(),
        torch.zeros(1, 1, size, size),
        str(out),
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "N"}, "embedding": {0: "N"}},
        opset_version=18,
        dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript, which no extra installs
    )
    return out
