"""Similarity-Preserving KD (Tung & Mori, ICCV 2019; catalogue id ``tung2019similarity``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch, check_same_length, tensor_list
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def row_normalized_gram(x: Tensor) -> Tensor:
    """SP's batch similarity: ``f f^T`` of flattened features with L2-normalised rows."""
    x = flatten_samples(x)
    return F.normalize(x @ x.t(), dim=1)


@register("sp", paper="tung2019similarity")
class SP(DistillationLoss):
    r"""Similarity-Preserving KD (Tung & Mori, ICCV 2019; catalogue id ``tung2019similarity``).

    :math:`\tilde G = \mathrm{rownorm}(f f^\top)` of the flattened batch, for every layer :math:`l`:

    .. math:: \mathcal{L} = w\sum_l \frac{1}{B^2}\|\tilde G^t_l - \tilde G^s_l\|_F^2

    Args:
        loss_weight: ``w`` (3000: RepDistiller ``-b 3000``, mdistiller CIFAR ``FEAT_WEIGHT``).

    Notes:
        Shapes: ``feats_student`` / ``feats_teacher``: lists of ``(B, *)`` tensors (widths and
        spatial sizes may differ). Checked against RepDistiller ``distiller_zoo/SP.py``
        (``Similarity``), identical to mdistiller ``sp_loss`` and torchdistill ``SPKDLoss``.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L11 (-a 0 -b 3000); {MDISTILLER_CFG}:L120-123",
        ),
    }

    def __init__(self, loss_weight: float = 3000.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, feats_student: Sequence[Tensor], feats_teacher: Sequence[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        feats_student, feats_teacher = tensor_list(feats_student), tensor_list(feats_teacher)
        check_same_length(feats_student, feats_teacher)
        loss = feats_student[0].new_zeros(())
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_batch(s, t, "SP feature")
            diff = row_normalized_gram(t.detach()) - row_normalized_gram(s)
            loss = loss + diff.pow(2).sum() / s.shape[0] ** 2
        return self.loss_weight * loss
