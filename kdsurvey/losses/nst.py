"""Neuron selectivity transfer ("Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", Huang & Wang, 2017; catalogue id ``huang2017like``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_layers
from kdsurvey.losses._pooling import pool_to_smaller
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset, layers_example
from kdsurvey.losses.registry import register


def _nst_layer(fs: Tensor, ft: Tensor) -> Tensor:
    """Squared MMD with kernel (x.y)^2 between the L2-normalised channel vectors of one layer.

    ``mean K_tt + mean K_ss - 2 mean K_st`` equals ``(1/B) sum_b || S^T S / C_s - T^T T / C_t
    ||_F^2`` (S: ``C_s x HW``), since ``sum_ij (s_i.t_j)^2 = <S^T S, T^T T>_F``. The position-Gram
    form is used when it is cheaper (HW smaller than the channel counts); both are exact.
    """
    b, cs = fs.shape[:2]
    ct = ft.shape[1]
    s = F.normalize(fs.flatten(2), dim=2)
    t = F.normalize(ft.flatten(2), dim=2)
    hw = s.shape[2]
    if hw * hw * (cs + ct) < cs * cs * hw + cs * ct * hw:
        gs = torch.bmm(s.transpose(1, 2), s) / cs
        gt = torch.bmm(t.transpose(1, 2), t) / ct
        return (gs - gt).pow(2).sum() / b
    k_tt = torch.bmm(t, t.transpose(1, 2)).pow(2).mean()
    k_ss = torch.bmm(s, s.transpose(1, 2)).pow(2).mean()
    k_st = torch.bmm(s, t.transpose(1, 2)).pow(2).mean()
    return k_tt + k_ss - 2 * k_st


@register("nst", paper="huang2017like")
class NST(DistillationLoss):
    r"""Neuron selectivity transfer ("Like What You Like: Knowledge Distill via Neuron Selectivity
    Transfer", Huang & Wang, 2017; catalogue id ``huang2017like``).

    Each channel's activation map, flattened over positions and L2-normalised, is a sample of the
    layer's distribution; the squared MMD with the polynomial kernel :math:`k(x,y)=(x^\top y)^2`:

    .. math::
        \mathcal{L} = w\sum_l \frac1B\sum_b\Big[\overline{k(t_i,t_{i'})} + \overline{k(s_j,s_{j'})}
        - 2\,\overline{k(s_j,t_i)}\Big]

    where the bars are means over the channel pairs.

    Args:
        loss_weight: ``w`` (50: RepDistiller ``-b 50``, mdistiller ``FEAT_WEIGHT``).

    Notes:
        Shapes: lists of ``(B, C, H, W)`` per layer; channel counts may differ; the spatially larger map
        is adaptive-average-pooled to the smaller. Returns a scalar.

        Checked against mdistiller ``distillers/NST.py`` (``nst_loss``), identical to RepDistiller
        ``NSTLoss``. The authors' MXNet code drops the constant teacher-teacher term, adds a kernel
        constant and returns per-sample values; the PyTorch reference's full form is used (zero when the
        student equals the teacher). Computed with batched matrix products instead of the reference's
        broadcast ``(B, C, C, HW)`` tensor, so memory stays ``O(B C^2)``.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L27 (-a 0 -b 50); {MDISTILLER_CFG}:L108-111",
            note="the libraries' CIFAR-100 recipe; the authors' MXNet code is for ImageNet",
        ),
    }

    def __init__(self, loss_weight: float = 50.0):
        super().__init__()
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
            total = total + _nst_layer(fs, ft)
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return layers_example(batch, dtype, generator, large, layers=2)
