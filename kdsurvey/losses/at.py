"""Attention transfer ("Paying More Attention to Attention: Improving the Performance of Convolutional Neural Networks via Attention Transfer", Zagoruyko & Komodakis, ICLR 2017; catalogue id ``zagoruyko2017paying``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_layers
from kdsurvey.losses._pooling import pool_to_smaller
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset, layers_example
from kdsurvey.losses.registry import register


def _attention_map(feat: Tensor, p: float) -> Tensor:
    return F.normalize(feat.pow(p).mean(1).flatten(1), dim=1)


@register("at", paper="zagoruyko2017paying")
class AT(DistillationLoss):
    r"""Attention transfer ("Paying More Attention to Attention: Improving the Performance of
    Convolutional Neural Networks via Attention Transfer", Zagoruyko & Komodakis, ICLR 2017;
    catalogue id ``zagoruyko2017paying``).

    .. math::
        a(F) = \frac{\operatorname{vec}(\bar F)}{\lVert\operatorname{vec}(\bar F)\rVert_2},\quad
        \bar F = \frac1C\sum_c F_c^{\,p},\qquad
        \mathcal{L} = w \sum_l \frac{1}{B\,H_lW_l}\sum_b \big\lVert a(F^s_{l,b}) - a(F^t_{l,b})
        \big\rVert_2^2

    Args:
        p: power applied to the activations before the channel mean (default 2).
        loss_weight: ``w`` = the paper's :math:`\beta` (1000: paper Sec. 4; RepDistiller ``-b 1000``).

    Notes:
        Shapes: ``feats_student`` and ``feats_teacher`` are lists of ``(B, C, H, W)`` maps, one per
        layer; channel counts may differ, and the spatially larger map of a pair is
        adaptive-average-pooled to the smaller one. Returns a scalar.

        Checked against mdistiller ``distillers/AT.py`` (``at_loss``), identical to the authors'
        szagoruyko/attention-transfer ``utils.at_loss`` and RepDistiller ``Attention``. The paper's Eq.
        2 takes a per-sample L2 norm of the difference with a 1/2 factor; the official code uses the
        mean of the squared difference over batch and positions, reproduced here.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L9 (-a 0 -b 1000); {MDISTILLER_CFG}:L67-71; "
            "paper Sec. 4 (beta = 10^3)",
        ),
    }

    def __init__(self, p: float = 2.0, loss_weight: float = 1000.0):
        super().__init__()
        self.p = p
        self.loss_weight = loss_weight

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_layers(feats_student, feats_teacher)
        total = 0.0
        for fs, ft in zip(feats_student, feats_teacher, strict=True):
            fs, ft = pool_to_smaller(fs, ft.detach())
            total = total + (_attention_map(fs, self.p) - _attention_map(ft, self.p)).pow(2).mean()
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return layers_example(batch, dtype, generator, large, layers=2)
