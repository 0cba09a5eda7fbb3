"""Relation matrices between samples or positions, and the reshapes they start from."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def flatten_samples(x: Tensor) -> Tensor:
    """``(B, ...)`` -> ``(B, D)``."""
    return x.reshape(x.shape[0], -1)


def flatten_positions(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, HW)``."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def pairwise_distances(e: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    r"""Euclidean distance matrix of the rows of ``e`` (``(B, D)``) as RKD/IRG compute it:
    :math:`\|a\|^2+\|b\|^2-2a\cdot b` clamped at ``eps``, optional square root, zero diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps)
    if not squared:
        d = d.sqrt()
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d.masked_fill(eye, 0.0)


def squared_distances(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Plain squared Euclidean distances between rows (no clamp, no diagonal handling)."""
    b = a if b is None else b
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


def cosine_matrix(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Cosine similarity between the rows of ``a`` and of ``b`` (``a`` itself by default)."""
    a = F.normalize(flatten_samples(a), dim=1)
    b = a if b is None else F.normalize(flatten_samples(b), dim=1)
    return a @ b.t()


def position_affinity(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, HW, HW)``: cosine similarity between every two positions of each
    map (channel vectors L2-normalised), so student and teacher widths may differ."""
    v = F.normalize(flatten_positions(x), dim=1)
    return v.transpose(1, 2) @ v
