"""Generous Teacher (Ding et al., Image and Vision Computing 2024; ``ding2024generous``)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import decoupled_log_probs, gt_mask, kl_from_log_probs
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.normkd import norm_temperature
from kdsurvey.losses.registry import register


def _nckd_rows(z_s: Tensor, z_t: Tensor, gt: Tensor) -> Tensor:
    """Per-row non-target-class KD of DKD: KL over the classes other than the label."""
    return kl_from_log_probs(decoupled_log_probs(z_s, gt)[1], decoupled_log_probs(z_t, gt)[1])


@register("generous_teacher", paper="ding2024generous")
class GenerousTeacher(DistillationLoss):
    r"""Generous Teacher (Ding et al., Image and Vision Computing 2024; ``ding2024generous``).

    A loss for *training the teacher*: the model being trained (passed as ``logits_student``)
    absorbs the non-target knowledge of a standardly trained teacher (``logits_teacher``), so it
    later hands on richer non-target knowledge. It is the NCKD term of DKD with NormKD
    per-sample temperatures:

    .. math:: \mathcal{L} = w\,\frac{1}{B}\sum_b (T^t_b)^2\,
              \mathrm{KL}\big(\hat p^t_b\,\|\,\hat p^s_b\big),\qquad
              \hat p_b = \sigma(z_b/T_b - 1000\,\mathbb{1}_{y_b}),\ T_b = \tau\,\mathrm{std}(z_b)

    Args:
        t_norm: ``tau`` = ``--Tn`` (1.0).
        loss_weight: ``w`` = ``--alpha`` (1.0).

    Notes:
        Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Checked against EifelTing/Generous-Teacher
        ``train_generous.py::train_epoch_kd_adv`` (warm-up ``min(epoch/20, 1)`` and the label CE of
        the generous teacher are left out).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar10": Preset(
            source="EifelTing/Generous-Teacher@b78440d README.md:L27 (--Tn 1.0 --alpha 1.0); "
            "train_generous.py:L32-33, L110-112 (warmup = 20)",
            warmup_epochs=20,
            note="trains the teacher: the label term is the teacher's own cross-entropy",
        ),
    }

    def __init__(self, t_norm: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        self.t_norm = t_norm
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
        z_t = logits_teacher.detach()
        t_s = norm_temperature(logits_student, self.t_norm)
        t_t = norm_temperature(z_t, self.t_norm)
        gt = gt_mask(logits_student, target)
        rows = _nckd_rows(logits_student / t_s, z_t / t_t, gt)
        return self.loss_weight * (rows * t_t.squeeze(1) ** 2).mean()
