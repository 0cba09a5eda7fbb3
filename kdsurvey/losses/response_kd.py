"""Efficient Distillation (Song et al., ACM MM 2023; ``song2023exploring``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("response_kd", paper="song2023exploring")
class ResponseKD(DistillationLoss):
    r"""Efficient Distillation (Song et al., ACM MM 2023; ``song2023exploring``).

    The paper finds that more confident teacher predictions distil better and that the samples
    the teacher gets wrong must be kept. Its recipe first trains with weighted soft labels
    (``stage=1``) and then, for the final epochs, switches to a sharpened teacher (temperature
    on the teacher only) where samples that the student already fits better than the teacher,
    *and* that the teacher gets right, fall back to the (lightly smoothed) label, while every
    other sample, teacher-wrong ones included, is distilled (``stage=2``, default):

    .. math:: \text{stage 2: } \mathcal{L} = \frac{w}{B}\sum_b
              \begin{cases} -\tilde y_b^\top\log\sigma(z^s_b) & \ell^s_b < \ell^t_b
              \wedge \arg\max z^t_b = y_b\\
              -\sigma(z^t_b/T)^\top\log\sigma(z^s_b) & \text{otherwise}\end{cases}

    with :math:`\ell^s_b = -\log\sigma(z^s_b)_{y_b}`, :math:`\ell^t_b = -\log\sigma(z^t_b/T)_{y_b}`,
    :math:`\tilde y = (1-\epsilon)\,\mathrm{onehot}(y) + \epsilon/C`.

    .. math:: \text{stage 1: } \mathcal{L} = \frac{w\,T^2}{B}\sum_b \omega_b^{\beta}\,
              \big(-\sigma(z^t_b/T)^\top\log\sigma(z^s_b/T)\big),\quad
              \omega_b = 1 - e^{-\ell^s_b/\ell^t_b}

    (weighted soft labels; here both :math:`\ell` use temperature ``T``, weights detached).

    Args:
        stage: 2 (final-stage objective, default) or 1 (main-stage weighted soft labels).
        temperature: ``T``; ``None`` picks the official value: 0.7 (stage 2, teacher only) or 2.0.
        beta: exponent of the stage-1 sample weight (1.0).
        label_smoothing: ``epsilon`` of the stage-2 label target (0.01).
        loss_weight: ``w`` (1 in the official stage 2, with no other term; stage 1 uses 0.5 next to
            a label-smoothed CE).

    Notes:
        Shapes: ``(B, C)`` logits, ``(B,)`` labels; scalar. Both stages are cross-entropies (not 0
        when the logits match). Checked against lsongx/EffDstl ``mmcls/models/losses/wsl_loss.py``
        (``WSLLoss``), ``configs/res18_distill_tres34.py`` and ``mmcls/core/hooks/wslv2_hook.py``:
        equal values and gradients in float64 for both stages. The official stage-2 label target
        hard-codes ``0.01/1000`` (ImageNet); here it is ``epsilon / C``, identical for 1000 classes.
        The official schedule also swaps the teacher network between the stages; that is outside the
        loss.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="lsongx/EffDstl@68d7f7f configs/mbv1_distill_tres50.py:L93-114 (WSLv2Hook from epoch 240: WSLLoss, temperature 0.7 on the "
            "teacher only)",
            task_weight=0.0,
            note="the final stage trains on this loss alone, with a stronger teacher",
        ),
        "imagenet_stage1": Preset(
            source="lsongx/EffDstl@68d7f7f configs/mbv1_distill_tres50.py:L15-26 (WSLLoss temperature 2, distill_loss_alpha 0.5; "
            "CrossEntropySmoothLoss 0.1, ce_loss_alpha 1)",
            kwargs={"stage": 1, "loss_weight": 0.5},
            note="the label term is label-smoothed (0.1)",
        ),
    }

    def __init__(
        self,
        stage: int = 2,
        temperature: float | None = None,
        beta: float = 1.0,
        label_smoothing: float = 0.01,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.stage = stage
        self.temperature = temperature if temperature is not None else (0.7 if stage == 2 else 2.0)
        self.beta = beta
        self.label_smoothing = label_smoothing
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
        z_t = logits_teacher.detach()
        log_p_t = F.log_softmax(z_t / t, dim=1)
        idx = target.unsqueeze(1)
        ce_t = -log_p_t.gather(1, idx).squeeze(1)
        if self.stage == 1:
            log_p_s = F.log_softmax(logits_student / t, dim=1)
            distill = -(log_p_t.exp() * log_p_s).sum(1)
            ce_s = -log_p_s.gather(1, idx).squeeze(1).detach()
            weight = 1 - torch.exp(-(ce_s / ce_t).clamp_min(0))
            return self.loss_weight * t * t * (weight.pow(self.beta) * distill).mean()
        log_p_s = F.log_softmax(logits_student, dim=1)
        distill = -(log_p_t.exp() * log_p_s).sum(1)
        c = logits_student.shape[1]
        eps = self.label_smoothing
        label = (1 - eps) * F.one_hot(target, c).to(log_p_s.dtype) + eps / c
        label_ce = -(label * log_p_s).sum(1)
        ce_s = -log_p_s.gather(1, idx).squeeze(1).detach()
        use_label = (ce_s < ce_t) & (z_t.argmax(dim=1) == target)
        return self.loss_weight * torch.where(use_label, label_ce, distill).mean()
