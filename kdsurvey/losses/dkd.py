"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022; ``zhao2022decoupled``)."""

from __future__ import annotations

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import dkd_rows
from kdsurvey.losses.base import DistillationLoss
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
        loss_weight: ``w``.

    Notes:
        Shapes: ``logits_student``/``logits_teacher`` ``(B, C)``, ``target`` ``(B,)`` int64; scalar.
        Checked against mdistiller ``mdistiller/distillers/DKD.py::dkd_loss`` (megvii-research).
        Like the official code, NCKD removes the target class by subtracting 1000 from its scaled
        logit; TCKD is evaluated in log space (same value, no ``log(0)`` for saturated rows). The
        warm-up factor of the official distiller and the label cross-entropy are not part of it.
    """

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
