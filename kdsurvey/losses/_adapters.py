"""Learnable connectors between student and teacher widths, and their bookkeeping.

Every loss that owns an adapter builds it only when it is given channel sizes; built without
them it applies none (its inputs are already adapted), which is how the reference cases run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._relations import flatten_samples


def channel_list(channels, name: str) -> list[int] | None:
    """A channel count or a sequence of them (one per layer) as a list; ``None`` stays ``None``."""
    if channels is None:
        return None
    if isinstance(channels, int):
        return [channels]
    out = [int(c) for c in channels]
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def channel_pairs(student_channels, teacher_channels) -> list[tuple[int, int]] | None:
    """Pairs (student, teacher) of channel counts, or None when no adapter is wanted."""
    s = channel_list(student_channels, "student_channels")
    t = channel_list(teacher_channels, "teacher_channels")
    if s is None and t is None:
        return None
    if s is None or t is None:
        raise ValueError("give both student_channels and teacher_channels, or neither")
    if len(s) != len(t):
        raise ValueError(f"{len(s)} student channel counts but {len(t)} teacher channel counts")
    return list(zip(s, t, strict=True))


def conv_bn_connector(c_in: int, c_out: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN, He-normal init over fan-out, BN (1, 0): the OFD/AB/AttnFD
    connector (``build_feature_connector`` of clovaai/overhaul-distillation)."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / c_out))
    bn = nn.BatchNorm2d(c_out)
    return nn.Sequential(conv, bn)


def layer_connectors(student_channels, teacher_channels) -> nn.ModuleList | None:
    """One :func:`conv_bn_connector` per layer whose widths differ (identity where they agree),
    or ``None`` without channel counts: RepDistiller's generic ``ConnectorV2``
    (``models/util.py``, commit b84f547), for losses whose official code compares maps of equal
    widths and has no adapter of its own."""
    pairs = channel_pairs(student_channels, teacher_channels)
    if pairs is None:
        return None
    return nn.ModuleList(
        nn.Identity() if c_s == c_t else conv_bn_connector(c_s, c_t) for c_s, c_t in pairs
    )


def connect(connectors: nn.ModuleList | None, feats: Sequence[Tensor]) -> list[Tensor]:
    """The student maps through their connectors (as they are without connectors)."""
    if connectors is None:
        return list(feats)
    if len(connectors) != len(feats):
        raise ValueError(f"built with {len(connectors)} layers' channels, given {len(feats)} maps")
    return [c(f) for c, f in zip(connectors, feats, strict=True)]


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, bias: bool = False) -> nn.Sequential:
    """``kernel`` x ``kernel`` conv (same padding) + BatchNorm + ReLU, PyTorch default init."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def apply_optional(module: nn.Module | None, x: Tensor) -> Tensor:
    """``module(x)``, or ``x`` itself when the loss was built without that adapter."""
    return x if module is None else module(x)


def classifier_params(classifier: Any) -> tuple[Tensor, Tensor | None]:
    """Weight and bias of a teacher classifier: ``nn.Linear``, a weight or ``(weight, bias)``."""
    if isinstance(classifier, nn.Module):
        weight, bias = classifier.weight, getattr(classifier, "bias", None)
    elif isinstance(classifier, (list, tuple)):
        weight, bias = classifier[0], classifier[1] if len(classifier) > 1 else None
    else:
        weight, bias = classifier, None
    return weight.detach(), None if bias is None else bias.detach()


class MLPEmbed(nn.Module):
    """Linear(d_in, 2 d_out) - ReLU - Linear(2 d_out, d_out); PyTorch default Linear init.

    The L2 normalisation that follows it in the reference code is applied by the losses, so that
    the parameter-free core (no embedding) normalises the same way."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim_in, 2 * dim_out), nn.ReLU(), nn.Linear(2 * dim_out, dim_out)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(flatten_samples(x))


def apply_classifier(e: Tensor, classifier: Any) -> Tensor:
    """The frozen teacher classifier (see :func:`classifier_params`) applied to embeddings ``e``."""
    weight, bias = classifier_params(classifier)
    return F.linear(e, weight.to(e), None if bias is None else bias.to(e))


def softmax_weighted_sum(losses: Sequence[Tensor]) -> Tensor:
    """Sum of the losses weighted by the softmax of their (detached) values."""
    stacked = torch.stack(list(losses))
    return (F.softmax(stacked.detach(), dim=0) * stacked).sum()
