"""Neighbourhood relational KD (Xin et al., ICASSP 2024; catalogue id ``xin2024new``, "A New Similarity-Based Relational Knowledge Distillation Method")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import (
    check_same_batch,
    check_same_length,
    check_same_shape,
    tensor_list,
)
from kdsurvey.losses._pooling import pool_to_smaller_square
from kdsurvey.losses._relations import cosine_matrix, flatten_positions
from kdsurvey.losses.base import DistillationLoss, Preset, feature_example, logits_example
from kdsurvey.losses.registry import register


def _rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for a ``(B, k)`` index of rows, via ``index_select``: the same values, but its
    backward is a cheap ``index_add`` instead of advanced indexing's accumulating ``index_put``."""
    return x.index_select(0, idx.flatten()).view(*idx.shape, *x.shape[1:])


@register("simrkd", paper="xin2024new")
class NeighbourRelationKD(DistillationLoss):
    r"""Neighbourhood relational KD (Xin et al., ICASSP 2024; catalogue id ``xin2024new``,
    "A New Similarity-Based Relational Knowledge Distillation Method").

    Each sample's :math:`k` nearest neighbours :math:`\mathcal N(i)` are the most cosine-similar
    samples by teacher logits. Feature relation: for each layer the squared difference between a
    sample and a neighbour, averaged over channels and L2-normalised over positions,
    :math:`a_{ij}=\mathrm{norm}(\mathrm{mean}_c(F_i-F_j)^2)`. Logit relation: the softmax of the
    logit difference :math:`r_{ij}=\sigma(z_i-z_j)`.

    .. math::
        \mathcal{L} = w\Big[\lambda_f\sum_l\frac{1}{Bk}\sum_{i,j\in\mathcal N(i)}
        \|a^s_{ij}-a^t_{ij}\|_2^2 + \lambda_z\frac{1}{Bk}\sum_{i,j\in\mathcal N(i)}
        \mathrm{JS}(r^s_{ij}\,\|\,r^t_{ij})\Big]

    Args:
        num_neighbors: :math:`k` (1).
        feat_weight: :math:`\lambda_f` (10).
        logit_weight: :math:`\lambda_z` (10).
        loss_weight: ``w`` (1, the official default).

    Notes:
        Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, C, H, W)`` maps (channels may
        differ; the map with the larger height is average-pooled to the other's square size);
        ``logits_*`` ``(B, K)``. Checked against the authors' code xinxiaoxiaomeng/NRKD
        ``NRKD-master/distillers/NKD.py`` (``NKDLoss``, used on ``feat[1:-1]``): identical values
        and gradients (float64) for the default :math:`k=1`. For :math:`k>1` the official code
        concatenates the neighbours' maps along positions and then views them as
        ``(B, k, C, HW)``, which mixes channels and neighbours; here
        each neighbour keeps its own map (the logit term agrees for every :math:`k`). The separate
        vanilla KD term of their training script is not included (use ``kd``).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="xinxiaoxiaomeng/NRKD@6224e4a README.md:L15 with NRKD-master/train_student.py:"
            "L40-42 (alpha, beta, gamma 1) and NRKD-master/distillers/NKD.py:L9 (k 1, lambda 10, 10)",
            note="the student also gets vanilla KD (T 4) at weight 1, a separate loss here",
        ),
    }

    def __init__(
        self,
        num_neighbors: int = 1,
        feat_weight: float = 10.0,
        logit_weight: float = 10.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_neighbors = num_neighbors
        self.feat_weight, self.logit_weight = feat_weight, logit_weight
        self.loss_weight = loss_weight

    @staticmethod
    def neighbours(logits_teacher: Tensor, k: int) -> Tensor:
        cos = cosine_matrix(logits_teacher)
        return torch.sort(cos, dim=1, descending=True).indices[:, 1 : k + 1]

    def forward(
        self,
        feats_student: Sequence[Tensor],
        feats_teacher: Sequence[Tensor],
        logits_student: Tensor,
        logits_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        feats_student, feats_teacher = tensor_list(feats_student), tensor_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        check_same_shape(logits_student, logits_teacher, "logits")
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "feature")
            check_same_batch(s, logits_student, "feature/logits")
        z_t = logits_teacher.detach()
        idx = self.neighbours(z_t, self.num_neighbors)  # (B, k)
        b, k = idx.shape
        feat_loss = logits_student.new_zeros(())
        for s, t in zip(feats_student, feats_teacher, strict=True):
            s, t = pool_to_smaller_square(s, t.detach())
            s, t = flatten_positions(s), flatten_positions(t)
            a_s = F.normalize((s.unsqueeze(1) - _rows(s, idx)).pow(2).mean(2), dim=2)
            a_t = F.normalize((t.unsqueeze(1) - _rows(t, idx)).pow(2).mean(2), dim=2)
            feat_loss = feat_loss + (a_s - a_t).pow(2).sum(2).mean()
        q = F.softmax(logits_student.unsqueeze(1) - _rows(logits_student, idx), dim=2)
        p = F.softmax(z_t.unsqueeze(1) - _rows(z_t, idx), dim=2)
        log_m = ((q + p) / 2).log()
        js = (F.kl_div(log_m, q, reduction="sum") + F.kl_div(log_m, p, reduction="sum")) / 2
        loss = self.feat_weight * feat_loss + self.logit_weight * js / (b * k)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = feature_example(batch, dtype, generator, large, layers=2)
        n = out["feats_student"][0].shape[0]
        out["feats_student"][1] = F.avg_pool2d(out["feats_student"][1], 2)
        out.update(logits_example(n, dtype, generator, large=False))
        if large:
            out["logits_student"] = torch.randn(n, 100, generator=generator, dtype=dtype)
            out["logits_teacher"] = 2 * torch.randn(n, 100, generator=generator, dtype=dtype)
        return out
