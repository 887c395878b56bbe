"""The raiox-v1 / v2 / v3 embedding network (torch; the ``train`` extra). Never imported when serving."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

EMBED_DIM = 512


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Block(nn.Module):
    """Residual block: two 3x3 convolutions, the first strided."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.a = _conv(cin, cout, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + self.skip(x))


class FixtureNet(nn.Module):
    """(N, 1, 192, 64) crop -> (N, 512) embedding (not normalised).

    Pooling keeps the axial position (platform / body / apex) and averages across the width.
    """

    def __init__(self, widths=(32, 64, 128), dim: int = EMBED_DIM, rows: int = 12):
        super().__init__()
        self.widths = tuple(widths)
        # a 5x5 stride-2 stem: sees thread detail at full resolution, computes at half
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 5, 2, 2, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        blocks, cin = [], 16
        for w in widths:
            blocks.append(Block(cin, w, 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.rows = rows
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(cin * rows, dim), nn.BatchNorm1d(dim))

    def forward(self, x):
        f = self.blocks(self.stem(x)).mean(3)  # (N, C, 12) for a 192-row input: averaged across the width
        if f.shape[2] != self.rows:  # a taller input (256 rows: 16) is averaged down to ``rows`` axial positions
            f = f @ row_pool(int(f.shape[2]), self.rows).to(f)
        return self.head(f.flatten(1))


def row_pool(n: int, rows: int) -> torch.Tensor:
    """(n, rows) matrix averaging n axial positions into ``rows`` windows, as ``adaptive_avg_pool1d`` does; a
    MatMul in the exported graph (ONNX has no adaptive pooling whose output size does not divide its input's)."""
    # from numpy: a constant to the ONNX tracer (torch ops trace as ScatterND)
    return torch.from_numpy(_row_pool(n, rows))


@lru_cache(maxsize=8)
def _row_pool(n: int, rows: int) -> np.ndarray:
    pool = np.zeros((n, rows), np.float32)
    for j in range(rows):
        start, end = (j * n) // rows, -(-((j + 1) * n) // rows)
        pool[start:end, j] = 1.0 / (end - start)
    return pool


class Exported(nn.Module):
    """Serving graph: mirror-averaged, L2-normalised embedding."""

    def __init__(self, net: FixtureNet):
        super().__init__()
        self.net = net

    def forward(self, image):
        both = self.net(torch.cat([image, torch.flip(image, dims=[3])], 0))
        n = image.shape[0]
        return F.normalize(both[:n] + both[n:], dim=1)


class ArcFace(nn.Module):
    """Additive angular margin softmax (Deng et al. 2019)."""

    def __init__(self, classes: int, dim: int = EMBED_DIM, scale: float = 30.0, margin: float = 0.3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb, labels):
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-6, 1 - 1e-6)
        target = torch.cos(torch.acos(cos.gather(1, labels[:, None])) + self.margin)
        logits = cos.scatter(1, labels[:, None], target) * self.scale
        return F.cross_entropy(logits, labels)


class AttributeHeads(nn.Module):
    """One linear classifier per design feature (``raiox.vision.attributes.HEADS``) on the normalised
    embedding; the training loss adds their mean cross-entropy. Not part of the serving graph."""

    def __init__(self, sizes: tuple[int, ...], dim: int = EMBED_DIM, scale: float = 16.0):
        super().__init__()
        self.linear = nn.Linear(dim, sum(sizes))
        self.sizes, self.scale = tuple(sizes), scale

    def forward(self, emb):
        """Logits of every head, one (N, classes) tensor each."""
        return torch.split(self.linear(F.normalize(emb)) * self.scale, self.sizes, dim=1)

    def loss(self, emb, targets):
        """Mean cross-entropy over the heads; a target of -1 (the head does not apply) is ignored."""
        losses = [F.cross_entropy(logits, targets[:, h], ignore_index=-1) for h, logits in enumerate(self(emb))]
        return torch.stack([x for x in losses if not torch.isnan(x)]).mean()


def from_onnx(path) -> FixtureNet:
    """A ``FixtureNet`` holding the weights of an exported (serving) graph, to fine-tune a shipped model.

    The export folds each convolution's BatchNorm into the convolution (weight and bias): the weight goes
    back into the convolution, the bias into the BatchNorm's shift (unit scale, zero mean, unit variance),
    so the net in eval mode computes what the file does; ``calibrate_norms`` then makes train mode agree.
    """
    from onnx import numpy_helper

    from raiox.vision.ensemble import load_onnx

    graph = load_onnx(path).graph  # a file that is no ONNX model: a ValueError saying so
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    net = FixtureNet(onnx_widths(convs, weights))
    pairs = _conv_norm_pairs(net)
    if len(convs) != len(pairs):
        raise ValueError(f"{path}: {len(convs)} convolutions, the net has {len(pairs)}")
    with torch.no_grad():
        for node, (conv, norm) in zip(convs, pairs):
            conv.weight.copy_(weights[node.input[1]])
            norm.reset_running_stats()  # zero mean; unit variance once eps is added back below
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.fill_(1.0)
            norm.bias.copy_(weights[node.input[2]])
        head = {k.removeprefix("net.head."): v for k, v in weights.items() if k.startswith("net.head.")}
        missing = net.head.load_state_dict(head, strict=False).missing_keys  # the file has no batch counter
        if any(not k.endswith("num_batches_tracked") for k in missing):
            raise ValueError(f"{path}: no head weights for {missing}")
    return net


def onnx_widths(convs, weights) -> tuple[int, ...]:
    """The residual blocks' widths of an exported ``FixtureNet``: after the stem each block traces three
    convolutions (``a``, ``b``, ``skip``), all as wide as the block."""
    outs = [int(weights[node.input[1]].shape[0]) for node in convs[1:]]
    return tuple(outs[0::3]) if outs and len(outs) % 3 == 0 else (32, 64, 128)


def _conv_norm_pairs(net: nn.Module):
    """(Conv2d, the BatchNorm2d right after it) in the order the forward pass runs them."""
    mods = list(net.modules())
    return [(m, mods[i + 1]) for i, m in enumerate(mods[:-1])
            if isinstance(m, nn.Conv2d) and isinstance(mods[i + 1], nn.BatchNorm2d)]


def calibrate_norms(net: FixtureNet, x: torch.Tensor) -> None:
    """Set every convolution's BatchNorm so that train mode (batch statistics) computes on batches like
    ``x`` what eval mode computes now: scale = the channel's spread, shift += its mean, and the running
    statistics to match (eval mode unchanged)."""
    seen = {}
    hooks = [norm.register_forward_hook(lambda m, inp, out, key=id(norm): seen.__setitem__(key, inp[0]))
             for _, norm in _conv_norm_pairs(net)]
    net.eval()
    with torch.no_grad():
        net(x)
        for h in hooks:
            h.remove()
        for _, norm in _conv_norm_pairs(net):
            z = seen[id(norm)]
            zn = ((z - norm.running_mean[None, :, None, None])
                  / torch.sqrt(norm.running_var + norm.eps)[None, :, None, None])
            zn = zn * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]  # what eval mode outputs
            mean, std = z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=False).add(norm.eps).sqrt()
            out_mean, out_std = zn.mean((0, 2, 3)), zn.std((0, 2, 3), unbiased=False)
            # new eval mode: (z - mean) / std * out_std + out_mean == the old output (affine in z per channel)
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(std**2 - norm.eps)
            norm.weight.copy_(out_std)
            norm.bias.copy_(out_mean)
