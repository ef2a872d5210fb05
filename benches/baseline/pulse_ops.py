"""The parts of a PULSE step both baseline scripts share, in plain PyTorch as PULSE writes them:
the bicubic downscaler, GEOCROSS, the loss and the spherical projection (docs/design.md,
"Losses", "The downscaler", "The optimizer")."""
import math

import torch
import torch.nn.functional as F


def cubic(x, a=-0.5):
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def downscaler(factor):
    """PULSE's bicubic downscale by `factor` (a power of two), reflect-padded, rows then columns."""
    K = 4 * factor
    taps = torch.tensor([cubic((i - K // 2 + 0.5) / factor) for i in range(K)])
    taps = taps / taps.sum()
    top = (K - factor) // 2

    def down(x):
        x = F.pad(x, (0, 0, top, K - factor - top), mode="reflect")
        x = F.conv2d(x, taps.view(1, 1, K, 1).repeat(3, 1, 1, 1), stride=(factor, 1), groups=3)
        x = F.pad(x, (top, K - factor - top, 0, 0), mode="reflect")
        return F.conv2d(x, taps.view(1, 1, 1, K).repeat(3, 1, 1, 1), stride=(1, factor), groups=3)

    return down


def geocross(w):
    L = w.size(1)
    X, Y = w.view(-1, 1, L, 512), w.view(-1, L, 1, 512)
    d = 2 * torch.atan2(((X - Y).pow(2).sum(-1) + 1e-9).sqrt(), ((X + Y).pow(2).sum(-1) + 1e-9).sqrt())
    return ((d.pow(2) * 512).mean((1, 2)) / 8).sum()


def loss(lr, ref, wp):
    return 100 * (lr - ref).pow(2).mean((1, 2, 3)).clamp(min=2e-3).sum() + 0.05 * geocross(wp)


def radii(params):
    return [(q.detach().pow(2).sum(tuple(range(2, q.ndim)), keepdim=True) + 1e-9).sqrt() for q in params]


@torch.no_grad()
def project(params, rs):
    for q, r in zip(params, rs):
        q.div_((q.pow(2).sum(tuple(range(2, q.ndim)), keepdim=True) + 1e-9).sqrt()).mul_(r)
