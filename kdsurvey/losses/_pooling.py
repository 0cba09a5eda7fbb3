"""Pooling two feature maps to a common spatial size.

Two rules, two names: ``pool_to_smaller`` keeps the smaller map's (H, W) (AT, NST, SemCKD),
``pool_to_smaller_square`` pools to (H, H) as FSP's official code does; they agree on square maps.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pool_to_smaller_square(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the map with the larger height to the other's (square) size, as FSP does."""
    ha, hb = a.shape[2], b.shape[2]
    if ha > hb:
        a = F.adaptive_avg_pool2d(a, (hb, hb))
    elif hb > ha:
        b = F.adaptive_avg_pool2d(b, (ha, ha))
    return a, b


def pool_to_smaller(fs: Tensor, ft: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the map with the larger height down to the other's (H, W)."""
    hs, ht = fs.shape[2], ft.shape[2]
    if hs > ht:
        fs = F.adaptive_avg_pool2d(fs, ft.shape[2:])
    elif hs < ht:
        ft = F.adaptive_avg_pool2d(ft, fs.shape[2:])
    return fs, ft
