"""Consistency-regularisation-based logit distillation, CRLD (Zhang et al., ACM MM 2024; catalogue id ``zhang2024cross``, "Cross-View Consistency Regularisation for Knowledge Distillation")."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_to_probs
from kdsurvey.losses.base import DistillationLoss, Preset, logits_example
from kdsurvey.losses.registry import register


@register("cross_view", paper="zhang2024cross")
class CrossViewConsistency(DistillationLoss):
    r"""Consistency-regularisation-based logit distillation, CRLD (Zhang et al., ACM MM 2024;
    catalogue id ``zhang2024cross``, "Cross-View Consistency Regularisation for Knowledge
    Distillation").

    A weakly (:math:`w`) and a strongly (:math:`s`) augmented view of each image; with
    :math:`\ell(a, b) = T^2\,\mathrm{KL}(\sigma(z^t_b/T)\|\sigma(z^s_a/T))` per sample and
    confidence masks :math:`m^w_i=[\max\sigma(z^t_{w,i})\ge\tau_w]`,
    :math:`m^s_i=[\max\sigma(z^t_{s,i})\ge\tau_s]`:

    .. math::
        \mathcal{L} = \frac{w}{B}\sum_i\Big[\lambda_{wv}\,m^w_i\big(\ell(w,w)+\ell(s,s)\big)
        + \lambda_{cv}\,m^s_i\big(\ell(s,w)+\ell(w,s)\big)\Big]_i

    Args:
        temperature: :math:`T` (4).
        within_weight: :math:`\lambda_{wv}` (2).
        cross_weight: :math:`\lambda_{cv}` (0.5).
        tau_weak: :math:`\tau_w` (0.9).
        tau_strong: :math:`\tau_s` (0.2).
        loss_weight: ``w`` (1; the official weights are the two above).

    Notes:
        Shapes: ``logits_student``/``logits_teacher`` are the weak view, ``logits_strong_student``/
        ``logits_strong_teacher`` the strong view, all ``(B, C)``. Checked against the official
        ``mdistiller/distillers/CRLD.py`` (``CRLD.forward_train``; defaults from its ``CFG.CRLD``),
        as mirrored in scx-822/CRLD-main (cross-entropy excluded): equal values and gradients.
        Filed under the "similarity" module with the rest of this survey section, although it is a
        logit method. ``zero_at_match`` is
        False: the cross-view term asks each student view to match the teacher's *other* view, so it
        stays positive when the student reproduces the teacher view by view.
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="scx-822/CRLD-main@c9d6657 mdistiller/engine/cfg.py, CFG.CRLD (CE_WEIGHT 1, "
            "WV_WEIGHT 2, CV_WEIGHT 0.5, TEMPERATURE 4, TAU_W 0.9, TAU_S 0.2)",
            note="a mirror of the official code",
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        within_weight: float = 2.0,
        cross_weight: float = 0.5,
        tau_weak: float = 0.9,
        tau_strong: float = 0.2,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.within_weight, self.cross_weight = within_weight, cross_weight
        self.tau_weak, self.tau_strong = tau_weak, tau_strong
        self.loss_weight = loss_weight

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        logits_strong_student: Tensor,
        logits_strong_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.
            logits_strong_student: (B, C) student logits of the strongly augmented view.
            logits_strong_teacher: (B, C) teacher logits of the strongly augmented view.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "weak-view logits")
        check_same_shape(logits_strong_student, logits_strong_teacher, "strong-view logits")
        check_same_shape(logits_strong_student, logits_student, "strong/weak student logits")
        t = self.temperature
        p_w = F.softmax(logits_teacher.detach() / t, dim=1)
        p_s = F.softmax(logits_strong_teacher.detach() / t, dim=1)
        mask_w = (F.softmax(logits_teacher.detach(), dim=1).amax(1) >= self.tau_weak).to(p_w)
        mask_s = (F.softmax(logits_strong_teacher.detach(), dim=1).amax(1) >= self.tau_strong).to(
            p_s
        )
        t2 = t * t
        within = t2 * (
            kl_to_probs(logits_student, p_w, t) + kl_to_probs(logits_strong_student, p_s, t)
        )
        cross = t2 * (
            kl_to_probs(logits_strong_student, p_w, t) + kl_to_probs(logits_student, p_s, t)
        )
        loss = (
            self.within_weight * (within * mask_w).mean()
            + self.cross_weight * (cross * mask_s).mean()
        )
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        weak = logits_example(batch, dtype, generator, large)
        strong = logits_example(batch, dtype, generator, large)
        return {
            "logits_student": weak["logits_student"],
            "logits_teacher": 2 * weak["logits_teacher"],
            "logits_strong_student": strong["logits_student"],
            "logits_strong_teacher": strong["logits_teacher"],
        }
