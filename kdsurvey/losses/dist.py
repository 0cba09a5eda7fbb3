"""DIST (Huang et al., NeurIPS 2022; catalogue id ``huang2022knowledge``, "Knowledge Distillation from A Stronger Teacher")."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise Pearson correlation as DIST computes it (``eps`` added to the norm product)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@register("dist", paper="huang2022knowledge")
class DIST(DistillationLoss):
    r"""DIST (Huang et al., NeurIPS 2022; catalogue id ``huang2022knowledge``, "Knowledge
    Distillation from A Stronger Teacher").

    With :math:`Y = \mathrm{softmax}(Z/\tau)` row-wise and :math:`\rho` the Pearson correlation,

    .. math::
        \mathcal{L} = w\,\tau^2\Big[\beta\big(1-\tfrac1B\sum_i\rho(Y^s_{i,:},Y^t_{i,:})\big)
        + \gamma\big(1-\tfrac1C\sum_c\rho(Y^s_{:,c},Y^t_{:,c})\big)\Big]

    (inter-class relation per sample, intra-class relation per class over the batch; the
    correlation adds ``1e-8`` to the product of norms, so the loss is ~1e-8 rather than exactly 0 at
    a perfect match).

    Args:
        beta: weight of the inter-class term (1).
        gamma: weight of the intra-class term (1).
        temperature: :math:`\tau` (1 on ImageNet; the CIFAR configs use 4).
        loss_weight: ``w`` (2, the authors' ``kd_loss_weight``).

    Notes:
        Shapes: ``logits_student`` and ``logits_teacher`` ``(B, C)``. Checked against
        hunto/image_classification_sota ``lib/models/losses/dist_kd.py`` (``DIST``), identical to
        Hao840/vanillaKD ``losses/dist.py``. Filed under "similarity" as the survey classifies it.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="hunto/image_classification_sota@6f7a70a configs/strategies/distill/resnet_dist.yaml:L28-30 (kd dist, "
            "ori_loss_weight 1, kd_loss_weight 2); lib/models/losses/kd_loss.py:L67-68 (beta 1, "
            "gamma 1, tau 1)",
        ),
        "cifar100": Preset(
            source="hunto/image_classification_sota@6f7a70a configs/strategies/distill/dist_cifar.yaml:L34-36 (kd dist_t4, "
            "kd_loss_weight 2); lib/models/losses/kd_loss.py:L69-71",
            kwargs={"temperature": 4.0},
        ),
    }

    def __init__(
        self,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        loss_weight: float = 2.0,
    ):
        super().__init__()
        self.beta, self.gamma, self.temperature = beta, gamma, temperature
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
        t = self.temperature
        y_s = F.softmax(logits_student / t, dim=1)
        y_t = F.softmax(logits_teacher.detach() / t, dim=1)
        inter = 1 - pearson_rows(y_s, y_t).mean()
        intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()
        return self.loss_weight * t * t * (self.beta * inter + self.gamma * intra)
