"""Spherical KD (Guo et al., 2020; ``guo2020reducing``), as trained by the official script."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("spherical_kd", paper="guo2020reducing")
class SphericalKD(DistillationLoss):
    r"""Spherical KD (Guo et al., 2020; ``guo2020reducing``), as trained by the official script.

    The student's logits are rescaled to the teacher's per-sample spread before the usual KD,
    so the student does not have to reproduce the teacher's confidence (logit norm):

    .. math:: \tilde z^s_b = z^s_b\,\frac{\mathrm{std}(z^t_b)}{\mathrm{std}(z^s_b)},\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(\tilde z^s_b/T)\big)

    Args:
        temperature: ``T`` (4.0).
        loss_weight: ``w`` = ``args.alpha`` (0.9 for the first 60 ImageNet epochs; the label CE
            gets ``1 - alpha``).

    Notes:
        Shapes: ``(B, C)`` logits; ``target`` ``(B,)`` is accepted (the official loop uses it only
        for the excluded label CE) and ignored; scalar. Checked against
        forjiuzhou/Spherical-Knowledge-Distillation ``skd_main.py::train_kd`` (``args.SKD``): the std
        is torch's unbiased std, logits are *not* mean-centred, the teacher is used as is and the
        gradient flows through ``std(z^s)``. The paper (and the README's minimal code) instead
        layer-normalises both logit vectors (centred) and multiplies them by a fixed radius; the
        default reproduces the training script, which produced the reported results.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="forjiuzhou/Spherical-Knowledge-Distillation@1c73fc0 README.md:L39 (--T=4); "
            "skd_main.py:L349-356 (alpha 0.9 until epoch 60)",
            task_weight=0.1,
            note="alpha then drops to 0.5 (epochs 60-79) and 0.1 (80-99), the label weight "
            "rising to 1 - alpha; that schedule is the training loop's",
        ),
    }

    def __init__(self, temperature: float = 4.0, loss_weight: float = 0.9):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(
        self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        if target is not None:
            check_target(logits_student, target)
        t = self.temperature
        z_t = logits_teacher.detach()
        scale = z_t.std(dim=1, keepdim=True) / logits_student.std(dim=1, keepdim=True)
        rows = kl_of_logits(logits_student * scale / t, z_t / t)
        return self.loss_weight * t * t * rows.mean()
