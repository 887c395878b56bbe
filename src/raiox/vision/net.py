"""The raiox-v1 embedding network (torch; the ``train`` extra). Never imported when serving."""

from __future__ import annotations

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
        f = self.blocks(self.stem(x))  # (N, C, 12, 4) for a 192 x 64 input
        f = F.adaptive_avg_pool2d(f, (self.rows, 1)).flatten(1)
        return self.head(f)


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
