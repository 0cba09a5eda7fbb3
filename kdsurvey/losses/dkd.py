"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022; ``zhao2022decoupled``)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import dkd_rows
from kdsurvey.losses._sources import MDISTILLER, MDISTILLER_CFG
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("dkd", paper="zhao2022decoupled")
class DKD(DistillationLoss):
    r"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022; ``zhao2022decoupled``).

    KD is split into target-class KD (TCKD: binary target-vs-rest distributions
    :math:`b = [p_y, 1 - p_y]`) and non-target-class KD (NCKD: the distribution over the
    non-target classes :math:`\hat p`), weighted separately so NCKD is no longer suppressed by a
    confident teacher:

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b \big[\alpha\,\mathrm{KL}(b^t_b\|b^s_b)
              + \beta\,\mathrm{KL}(\hat p^t_b\|\hat p^s_b)\big],\qquad p = \sigma(z/T)

    Args:
        alpha: TCKD weight (1.0).
        beta: NCKD weight (8.0 on CIFAR-100; 0.5 on ImageNet).
        temperature: ``T`` (4.0; 1.0 on ImageNet).
        loss_weight: ``w`` (1; the official training ramps it in over 20 epochs, 1 on ImageNet).

    Notes:
        Shapes: ``logits_student``/``logits_teacher`` ``(B, C)``, ``target`` ``(B,)`` int64; scalar.
        Checked against mdistiller ``mdistiller/distillers/DKD.py::dkd_loss`` (megvii-research).
        Like the official code, NCKD removes the target class by subtracting 1000 from its scaled
        logit; TCKD is evaluated in log space (same value, no ``log(0)`` for saturated rows). The
        warm-up factor of the official distiller and the label cross-entropy are not part of it.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{MDISTILLER_CFG}:L162-167 (CE_WEIGHT 1, ALPHA 1, BETA 8, T 4, WARMUP 20), "
            f"used as is by {MDISTILLER} configs/cifar100/dkd/res32x4_res8x4.yaml",
            warmup_epochs=20,
            note="BETA is set per pair: 8 (ResNet32x4 teachers), 6 (VGG13, WRN-40-2), 2 (ResNet56, "
            "ResNet110)",
        ),
        "imagenet": Preset(
            source=f"{MDISTILLER} configs/imagenet/r34_r18/dkd.yaml:L26-30",
            kwargs={"beta": 0.5, "temperature": 1.0},
            warmup_epochs=1,
            note="ResNet50 to MobileNet uses BETA 2.0 (configs/imagenet/r50_mv1/dkd.yaml:L28)",
        ),
    }

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        check_target(logits_student, target)
        t = self.temperature
        rows = dkd_rows(
            logits_student / t, logits_teacher.detach() / t, target, self.alpha, self.beta
        )
        return self.loss_weight * t * t * rows.mean()
