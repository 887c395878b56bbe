"""Several embedding models as one ONNX file (``raiox vision ensemble-embedders``): the product reads it like any one.

Each member embeds the canonical crop at its own input size; the file takes the largest member's crop and
shrinks it for the others inside the graph (``shrink_operator``: the anti-aliasing blur ``canonical_crop`` uses,
then bilinear sampling, as two fixed MatMuls). Its embedding is the L2-normalised sum of the members' (each
already L2-normalised), so every member weighs the same. Members whose crops differ in resolution err on
different queries (docs/benchmarks.md, session 25: raiox-v10 at 192 x 96 with its 256 x 128 fine-tune).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def shrink_operator(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float32 matrix resampling a crop axis from ``n_in`` to ``n_out`` pixels: Gaussian blur of
    sigma ``ANTIALIAS_SIGMA`` / scale (``canonical_crop``'s anti-aliasing), then linear interpolation at the output
    centres."""
    from raiox.vision.canonical import ANTIALIAS_SIGMA

    scale = n_out / n_in
    x = np.arange(n_in, dtype=np.float64)
    blur = np.exp(-0.5 * ((x[:, None] - x[None, :]) * scale / ANTIALIAS_SIGMA) ** 2) if scale < 1 else np.eye(n_in)
    blur /= blur.sum(1, keepdims=True)
    sample = np.zeros((n_out, n_in))
    for i, p in enumerate(np.clip((np.arange(n_out) + 0.5) / scale - 0.5, 0, n_in - 1)):
        j = min(int(p), n_in - 2) if n_in > 1 else 0
        f = p - j
        sample[i, j] += 1 - f
        if n_in > 1:
            sample[i, j + 1] += f
    return (sample @ blur).astype(np.float32)


def _members(models: list[Path]) -> list:
    """Each member as the product reads it (``OnnxEmbedder``: its crop size, channels and vector size)."""
    from raiox.vision.embedders import OnnxEmbedder

    members = [OnnxEmbedder(path, model_id=path.name) for path in models]
    for path, member in zip(models, members):
        if member.channels != 1:
            raise ValueError(f"{path}: not a one-channel crop model ({member.channels} channels)")
    if len({m.dim for m in members}) != 1:
        raise ValueError(f"members must give vectors of one size (got {[m.dim for m in members]})")
    return members


def load_onnx(path: Path):
    """The ONNX model file ``path``; one that is not (cut short, another format) is a ValueError saying so."""
    import onnx

    try:
        return onnx.load(str(path))
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own share no public base
        from raiox.kit.errors import first_line

        raise ValueError(f"{path}: not an ONNX model ({first_line(exc)})") from None


def _checked(model, members: list, paths: list[Path]):
    """``model`` once ONNX's checker passes it; else a ValueError naming what differs between the members."""
    import onnx

    from raiox.kit.errors import first_line

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        opsets = {p.name: max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
                  for p, m in zip(paths, members)}
        differ = (f"; the members import different ONNX opsets ({', '.join(f'{k}: {v}' for k, v in opsets.items())})"
                  if len(set(opsets.values())) > 1 else "")
        raise ValueError(f"the members do not combine into a valid ONNX model ({first_line(exc)}){differ}") from None
    return model


def _opsets(models) -> list:
    """Each operator domain the members use, at the highest version any of them imports."""
    from onnx import helper

    best: dict[str, int] = {}
    for model in models:
        for op in model.opset_import:
            best[op.domain] = max(best.get(op.domain, 0), op.version)
    return [helper.make_opsetid(domain, version) for domain, version in best.items()]


def ensemble(models: list[Path], out: Path) -> Path:
    """One embedding model out of ``models`` (ONNX, one-channel crops in, (N, D) out, every member the same D).
    Input: the largest member's crop size, same aspect for all."""
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    if len(models) < 2:
        raise ValueError(f"an ensemble needs two or more models (got {len(models)})")
    members = _members(models)
    loaded = [load_onnx(m) for m in models]
    sizes = [m.crop_size for m in members]
    h, w = max(sizes)
    if any(abs(sh / sw - h / w) > 1e-6 or sh > h or sw > w for sh, sw in sizes):
        raise ValueError(f"members must share one crop aspect (input sizes {sizes})")
    nodes, inits, embeddings = [], [], []
    for k, (model, (sh, sw)) in enumerate(zip(loaded, sizes)):
        graph = compose.add_prefix(model, prefix=f"m{k}/").graph
        source = "image"
        if (sh, sw) != (h, w):
            inits += [numpy_helper.from_array(shrink_operator(sh, h), f"m{k}/rows"),
                      numpy_helper.from_array(shrink_operator(sw, w).T.copy(), f"m{k}/cols")]
            nodes += [helper.make_node("MatMul", [f"m{k}/rows", "image"], [f"m{k}/tall"]),
                      helper.make_node("MatMul", [f"m{k}/tall", f"m{k}/cols"], [f"m{k}/image"])]
            source = f"m{k}/image"
        inner = graph.input[0].name
        for node in graph.node:
            node.input[:] = [source if name == inner else name for name in node.input]
        nodes += list(graph.node)
        inits += list(graph.initializer)
        embeddings.append(graph.output[0].name)
    dim = members[0].dim
    nodes += [helper.make_node("Sum", embeddings, ["sum"]),
              helper.make_node("LpNormalization", ["sum"], ["embedding"], axis=1, p=2)]
    graph = helper.make_graph(
        nodes, "embedder_ensemble", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, h, w])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])], inits)
    model = _checked(helper.make_model(graph, opset_imports=_opsets(loaded)), loaded, models)
    onnx.save(model, str(out))
    return out


def member(path: Path, index: int, out: Path) -> Path:
    """Member ``index`` of an ensemble file (``ensemble``'s order) as a model of its own, to fine-tune
    (``raiox vision train --init-from``) or evaluate alone. It takes the ensemble's crop (a smaller member
    keeps its shrink inside the graph) and gives that member's L2-normalised embedding; its tensors lose
    the ``m{index}/`` prefix, so a network reads like the file it came from."""
    import onnx
    from onnx import TensorProto, helper

    model = load_onnx(path)
    graph, prefix = model.graph, f"m{index}/"
    sums = [n for n in graph.node if n.op_type == "Sum"]
    outputs = [name for name in (sums[0].input if sums else []) if name.startswith(prefix)]
    if not outputs:
        members = sum(name.startswith("m") for name in sums[0].input) if sums else 0
        raise ValueError(f"{path}: no member {index} (an ensemble of {members} members)" if sums
                         else f"{path}: not an ensemble file (raiox vision ensemble-embedders)")
    image = graph.input[0].name

    def rename(name: str) -> str:
        short = name.removeprefix(prefix)
        return name if short == image else short

    nodes = [n for n in graph.node if n.output and n.output[0].startswith(prefix)]
    for node in nodes:
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
        node.name = rename(node.name)
    inits = [i for i in graph.initializer if i.name.startswith(prefix)]
    for init in inits:
        init.name = rename(init.name)
    dim = graph.output[0].type.tensor_type.shape.dim[1]
    single = helper.make_graph(nodes, "embedder", [graph.input[0]],
                               [helper.make_tensor_value_info(rename(outputs[0]), TensorProto.FLOAT,
                                                              ["N", dim.dim_value or dim.dim_param])], inits)
    result = helper.make_model(single, opset_imports=model.opset_import)
    onnx.checker.check_model(result)
    onnx.save(result, str(out))
    return out
