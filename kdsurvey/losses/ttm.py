"""Transformed Teacher Matching (Zheng & Yang, ICLR 2024; ``zheng2024knowledge``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_from_log_probs
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _power_teacher(z_t: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """TTM's transformed teacher: ``log`` of ``softmax(z)^gamma`` renormalised, and the log of
    the power sum ``sum_c softmax(z)_c^gamma`` (WTTM's sample weight), both per row."""
    powered = gamma * F.log_softmax(z_t, dim=1)
    log_norm = torch.logsumexp(powered, dim=1, keepdim=True)
    return powered - log_norm, log_norm.squeeze(1)


@register("ttm", paper="zheng2024knowledge")
class TTM(DistillationLoss):
    r"""Transformed Teacher Matching (Zheng & Yang, ICLR 2024; ``zheng2024knowledge``).

    Temperature is applied to the teacher only: the teacher's probabilities are power-transformed
    (equivalently, the teacher is softened at temperature :math:`1/\gamma`) while the student
    stays at temperature 1, which adds a Rényi-entropy regulariser on the student:

    .. math:: \tilde p^t_b = \frac{(p^t_b)^\gamma}{\sum_c (p^t_{bc})^\gamma},\qquad
              \mathcal{L} = w\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\tilde p^t_b\,\|\,\sigma(z^s_b)\big)

    Args:
        gamma: power exponent (``--ttm_l``; 0.1 on CIFAR-100).
        loss_weight: ``w`` (``-b``, 45 in the README's example).

    Notes:
        Shapes: ``(B, C)`` logits; scalar; no :math:`T^2` factor. Not zero when the student equals
        the teacher (it matches the *transformed* teacher), hence ``zero_at_match = False``.
        Checked against zkxufo/TTM ``distiller_zoo/ttm.py::TTM`` (computed here in log space).
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="zkxufo/TTM@fe457b3 README.md:L19-22 (--ttm_l 0.1 -r 1 -b 45 -a 0)",
            note="the README's example, VGG13 to VGG8",
        ),
    }

    def __init__(self, gamma: float = 0.1, loss_weight: float = 45.0):
        super().__init__()
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        log_p_t, _ = _power_teacher(logits_teacher.detach(), self.gamma)
        rows = kl_from_log_probs(F.log_softmax(logits_student, dim=1), log_p_t)
        return self.loss_weight * rows.mean()


@register("wttm", paper="zheng2024knowledge")
class WTTM(DistillationLoss):
    r"""Weighted Transformed Teacher Matching (Zheng & Yang, ICLR 2024; ``zheng2024knowledge``).

    TTM with a per-sample weight: the power sum :math:`U_\gamma(p^t_b) = \sum_c (p^t_{bc})^\gamma`
    (a Rényi-entropy measure of how smooth the teacher is on that sample):

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b U_\gamma(p^t_b)\,
              \mathrm{KL}\big(\tilde p^t_b\,\|\,\sigma(z^s_b)\big)

    Args:
        gamma: power exponent (``--ttm_l``, 0.1).
        loss_weight: ``w`` (``-b``).

    Notes:
        Shapes: ``(B, C)`` logits; scalar; no :math:`T^2`. ``zero_at_match = False`` as for TTM.
        Checked against zkxufo/TTM ``distiller_zoo/wttm.py::WTTM``.
    """

    zero_at_match = False

    def __init__(self, gamma: float = 0.1, loss_weight: float = 1.0):
        super().__init__()
        self.gamma = gamma
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        log_p_t, log_norm = _power_teacher(logits_teacher.detach(), self.gamma)
        rows = kl_from_log_probs(F.log_softmax(logits_student, dim=1), log_p_t)
        return self.loss_weight * (log_norm.exp() * rows).mean()
