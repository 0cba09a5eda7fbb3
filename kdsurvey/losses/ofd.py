"""Overhaul feature distillation ("A Comprehensive Overhaul of Feature Distillation", Heo et al., ICCV 2019; catalogue id ``heo2019comprehensive``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs, conv_bn_connector
from kdsurvey.losses._checks import check_layers, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset, layers_example
from kdsurvey.losses.registry import register


def ofd_margin(std: Tensor, mean: Tensor) -> Tensor:
    r"""Per-channel OFD margin :math:`E[x \mid x<0]` for :math:`x\sim\mathcal N(\mu,\sigma^2)`,
    or :math:`-3\sigma` when :math:`P(x<0)\le 0.001` (``get_margin_from_BN`` of the official
    code)."""
    s = std.abs()
    ratio = mean / s
    cdf = torch.special.ndtr(-ratio)
    safe = cdf.clamp_min(1e-30)
    expected = -s * torch.exp(-0.5 * ratio * ratio) / math.sqrt(2 * math.pi) / safe + mean
    return torch.where(cdf > 0.001, expected, -3.0 * s)


@register("ofd", paper="heo2019comprehensive")
class OFD(DistillationLoss):
    r"""Overhaul feature distillation ("A Comprehensive Overhaul of Feature Distillation", Heo et
    al., ICCV 2019; catalogue id ``heo2019comprehensive``).

    Partial L2 between connected student pre-ReLU features :math:`s=r(S)` and the teacher's pre-ReLU
    features clipped from below by the per-channel margin :math:`m` (expected negative response):

    .. math::
        t' = \max(t, m),\quad
        \mathcal{L} = \frac{w}{B}\sum_{l=1}^{n}\frac{1}{2^{\,n-l}}\sum (s_l - t'_l)^2\,
        \big[s_l > t'_l \ \lor\ t'_l > 0\big]

    Args:
        student_channels: C_s, the student's channel counts (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns one connector per layer, 1x1 conv (no bias) + BN,
            He-normal init, BN weight 1 / bias 0 (the official ``build_feature_connector``).
            ``None`` (default): no adapter, the student input is already adapted.
        teacher_channels: C_t, the teacher's channel counts (a sequence, one per layer): the width
            the adapter maps the student to. Give it together with ``student_channels``, or leave
            both ``None``.
        loss_weight: ``w`` (1e-3, the authors' CIFAR-100 training; 1e-4 on ImageNet).

    Notes:
        Inputs: ``feats_student``/``feats_teacher`` lists of ``(B, C, H, W)`` pre-ReLU maps (shallow to
        deep, equal shapes per layer); ``margins``: list of ``(1, C, 1, 1)`` margins per layer, as the
        official code derives them from the teacher's BN (use :meth:`margins_from_bn` on those layers).
        When ``margins`` is ``None`` they are estimated with the same Gaussian formula from the teacher
        batch's per-channel mean and standard deviation (an approximation of the BN parameters, which is
        what the BN output's distribution is expected to follow). Returns a scalar.

        Checked against clovaai/overhaul-distillation ``CIFAR-100/distiller.py`` (``distillation_loss``,
        ``Distiller.forward`` layer weights and the ``/ batch_size`` of ``train_with_distillation.py``);
        cross-checked with mdistiller ``OFD.feat_loss``. Zero when the student equals the teacher and
        margins are non-positive (always so for the official margins).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="clovaai/overhaul-distillation@76344a8 CIFAR-100/train_with_distillation.py:L91 "
            "(loss_distill.sum() / batch_size / 1000)",
        ),
        "imagenet": Preset(
            source="clovaai/overhaul-distillation@76344a8 ImageNet/train_with_distillation.py:L179 "
            "(/ batch_size / 10000)",
            kwargs={"loss_weight": 1e-4},
        ),
    }

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        loss_weight: float = 1e-3,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.connectors = None
        if pairs is not None:
            self.connectors = nn.ModuleList(conv_bn_connector(s, t) for s, t in pairs)

    @staticmethod
    def margins_from_bn(bn: nn.BatchNorm2d) -> Tensor:
        """``(1, C, 1, 1)`` margins from the affine parameters of the BN producing a teacher
        feature."""
        with torch.no_grad():
            # float64 as the official code (Python floats), then the BN's dtype
            margin = ofd_margin(bn.weight.double(), bn.bias.double()).to(bn.weight.dtype)
            return margin.view(1, -1, 1, 1)

    @staticmethod
    def margins_from_batch(feat_teacher: Tensor) -> Tensor:
        """``(1, C, 1, 1)`` margins estimated from a teacher batch's per-channel statistics."""
        with torch.no_grad():
            std, mean = torch.std_mean(feat_teacher.detach(), dim=(0, 2, 3), keepdim=True)
            return ofd_margin(std.clamp_min(1e-6), mean)

    def forward(
        self,
        feats_student: list[Tensor],
        feats_teacher: list[Tensor],
        margins: list[Tensor] | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.
            margins: list of (1, C_l, 1, 1) per-channel margins of the teacher, one per layer
                (:func:`ofd_margin` of the teacher's BN); ``None``: no margin.

        Returns:
            The scalar loss.
        """
        check_layers(feats_student, feats_teacher)
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [c(f) for c, f in zip(self.connectors, feats_student, strict=True)]
        if margins is None:
            margins = [self.margins_from_batch(t) for t in feats_teacher]
        elif len(margins) != len(feats_teacher):
            raise ValueError(f"{len(margins)} margins for {len(feats_teacher)} layers")
        n = len(feats_student)
        total = 0.0
        for i, (s, t, m) in enumerate(zip(feats_student, feats_teacher, margins, strict=True)):
            check_same_shape(s, t, "feature")
            t = torch.maximum(t.detach(), m.detach().to(t.dtype))
            partial = F.mse_loss(s, t, reduction="none") * ((s > t) | (t > 0)).to(s.dtype)
            total = total + partial.sum() / 2.0 ** (n - 1 - i)
        return self.loss_weight * total / feats_student[0].shape[0]

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = layers_example(batch, dtype, generator, large, layers=3)
        out["margins"] = [
            -(torch.rand(1, t.shape[1], 1, 1, generator=generator, dtype=dtype) + 0.1)
            for t in out["feats_teacher"]
        ]
        return out
