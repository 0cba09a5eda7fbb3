"""Weighted soft label distillation (WSLD) of Zhou et al., ICLR 2021 (``zhou2021rethinking``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("wsld", paper="zhou2021rethinking")
class WSLD(DistillationLoss):
    r"""Weighted soft label distillation (Zhou et al., ICLR 2021; ``zhou2021rethinking``).

    Soft labels trade bias for variance; the paper shows the variance-reducing benefit is lost on
    samples the teacher fits better than the student ("regularisation samples") and reweights
    each sample's soft-label cross-entropy by how the student's label cross-entropy compares
    with the teacher's. With :math:`\mathcal{H}^s_b = -\log\sigma(z^s_b)_{y_b}` and
    :math:`\mathcal{H}^t_b = -\log\sigma(z^t_b)_{y_b}` (no temperature, no gradient):

    .. math:: \omega_b = 1 - \exp\!\Big(-\frac{\mathcal{H}^s_b}{\mathcal{H}^t_b
              + 10^{-7}}\Big),\qquad
              \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b \omega_b\,
              \Big(-\sum_i \sigma(z^t_b/T)_i\log\sigma(z^s_b/T)_i\Big)

    Args:
        temperature: ``T`` of the soft labels (authors' ImageNet setting 2; the cls_KD CIFAR-100
            config uses 4).
        loss_weight: ``w``, multiplies the whole loss: the official ``alpha`` (authors' ImageNet
            setting 2.5; the cls_KD CIFAR-100 config uses 2.25).

    Notes:
        Checked against bellymonster/Weighted-Soft-Label-Distillation
        ``knowledge_distiller.py::WSLDistiller.forward`` (commit
        67820dd7c3c733d5331b78b1e66ef8a990391d5e; the label cross-entropy left out, the one-hot
        width taken from the logits instead of the hard-coded 1000) and cross-checked against
        yzd-v/cls_KD ``mmcls/models/dis_losses/wsld.py::WSLDLoss``. As in the official code the
        soft term is a cross-entropy (not a KL divergence), so it is not zero when student and
        teacher agree, and the weight is clamped at zero from below (a no-op, both cross-entropies
        being non-negative).
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="bellymonster/Weighted-Soft-Label-Distillation@4ecf930 "
            "knowledge_distiller.py:L40-41 (T 2, alpha 2.5; the hard loss at weight 1)",
        ),
        "cifar100": Preset(
            source="yzd-v/cls_KD@1e5d48f configs/distillers/cifar100/res34_distill_res18_cifar.py:"
            "L49-50 (temp 4.0, alpha 2.25)",
            kwargs={"temperature": 4.0, "loss_weight": 2.25},
            note="the NKD authors' library, not the WSLD authors' code",
        ),
    }

    def __init__(self, temperature: float = 2.0, loss_weight: float = 2.5):
        super().__init__()
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
        z_t = logits_teacher.detach()
        t = self.temperature
        soft_ce = -(F.softmax(z_t / t, dim=1) * F.log_softmax(logits_student / t, dim=1)).sum(1)
        label = target.reshape(-1, 1)
        ce_s = -F.log_softmax(logits_student.detach(), dim=1).gather(1, label).squeeze(1)
        ce_t = -F.log_softmax(z_t, dim=1).gather(1, label).squeeze(1)
        ratio = torch.clamp(ce_s / (ce_t + 1e-7), min=0.0)
        weight = 1.0 - torch.exp(-ratio)
        return self.loss_weight * t * t * (weight * soft_ce).mean()
