"""Segmentation label maps: resizing, per-class masks and per-class prototypes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = 255


def resize_labels(target: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of a label map ``(B, H, W)`` to ``size`` (as ``nn.Upsample``)."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    resized = F.interpolate(target[:, None].float(), size=tuple(size), mode="nearest")
    return resized[:, 0].long()


def class_masks(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """One-hot masks ``(B, K, H, W)``; labels outside ``[0, K)`` (e.g. 255) belong to no class."""
    valid = (labels >= 0) & (labels < num_classes)
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    return onehot.to(dtype) * valid[:, None].to(dtype)


def class_prototypes(feat: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Masked mean feature of each class of each image, ``(B, K, C)``: ``sum / (count + eps)``."""
    sums = torch.einsum("bkhw,bchw->bkc", masks, feat)
    return sums / (masks.sum(dim=(2, 3))[..., None] + eps)
