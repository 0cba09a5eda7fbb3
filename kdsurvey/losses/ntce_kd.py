"""Non-Target-Class-Enhanced KD, magnitude-enhanced KL (Li et al., Sensors 2024; ``li2024ntce``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape, check_target
from kdsurvey.losses._kl import gt_mask
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("ntce_kd", paper="li2024ntce")
class NTCEKD(DistillationLoss):
    r"""Non-Target-Class-Enhanced KD, magnitude-enhanced KL (Li et al., Sensors 2024;
    ``li2024ntce``).

    The softmax lets the target class dominate the KD signal. MKL shrinks the target class by
    several multiples of the teacher's top-1 margin :math:`m_b = z^t_{b,(1)} - z^t_{b,(2)}` (its
    largest minus its second largest logit) and averages the KD losses, so that the non-target
    classes weigh more. The teacher's top-1 class :math:`\hat y_b` and the student's label class
    :math:`y_b` are shrunk by the same amount :math:`f_k m_b`:

    .. math:: \mathcal{L} = w\,\frac{T^2}{K}\sum_{k=1}^{K}\frac1B\sum_b
              \mathrm{KL}\big(\sigma((z^t_b - f_k m_b\,\mathbb{1}_{\hat y_b})/T)\,\|\,
              \sigma((z^s_b - f_k m_b\,\mathbb{1}_{y_b})/T)\big)

    Factor 0 is plain KD; negative factors enlarge the target class instead.

    Args:
        temperature: ``T`` (4.0; the official ImageNet setting is 1.0).
        shrink_factors: the :math:`f_k` (the official default ``(2, 1.5, 1, 0.5, 0, -0.5, -1)``; its
            ResNet32x4/ResNet8x4 setting drops the negative ones).
        loss_weight: ``w``, the official ``KD_WEIGHT`` (8 by default, 2 for several CIFAR-100 pairs
            and ImageNet), ramped in linearly over the first 20 epochs (see ``presets``).

    Notes:
        Shapes: ``(B, C)`` logits with ``C >= 2``, ``(B,)`` labels; scalar. ``zero_at_match`` is
        False: with equal logits the loss is 0 only for the rows whose label is the teacher's top-1
        class. The paper's diversity-based data augmentation (DDA) acts on the inputs (the loss is
        applied to the augmented batch too) and is not part of the loss.

        Checked against the official code, https://github.com/lan-long/NTCE-KD
        (``mdistiller/distillers/NTCE.py``, configuration in ``mdistiller/engine/cfg.py``).
    """

    zero_at_match = False

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="lan-long/NTCE-KD@0842747 mdistiller/engine/cfg.py:L174-181 (CE_WEIGHT 1, KD_WEIGHT 8, T 4, WARMUP 20, "
            "FACTORS 2..-1)",
            warmup_epochs=20,
            note="configs/cifar100/ntce/res32x4_res8x4.yaml:L18-21 drops the negative factors",
        ),
        "imagenet": Preset(
            source="lan-long/NTCE-KD@0842747 configs/imagenet/r34_r18/ntce.yaml:L26-30 (KD_WEIGHT 2, T 1, WARMUP 1)",
            kwargs={"temperature": 1.0, "loss_weight": 2.0},
            warmup_epochs=1,
        ),
    }

    def __init__(
        self,
        temperature: float = 4.0,
        shrink_factors: tuple[float, ...] = (2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0),
        loss_weight: float = 8.0,
    ):
        super().__init__()
        if not shrink_factors:
            raise ValueError("shrink_factors must not be empty")
        self.temperature = temperature
        self.shrink_factors = tuple(float(f) for f in shrink_factors)
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
        if logits_student.shape[1] < 2:
            raise ValueError(
                f"ntce_kd needs at least 2 classes, got logits {tuple(logits_student.shape)}"
            )
        t = self.temperature
        z_t = logits_teacher.detach()
        top2 = z_t.topk(2, dim=1)
        margin = top2.values[:, 0] - top2.values[:, 1]  # (B,)
        factors = torch.tensor(self.shrink_factors, dtype=z_t.dtype, device=z_t.device)
        shift = factors.view(-1, 1, 1) * margin.view(1, -1, 1)  # (K, B, 1)
        top1 = F.one_hot(top2.indices[:, 0], z_t.shape[1]).to(z_t.dtype)
        label = gt_mask(logits_student, target).to(z_t.dtype)
        log_p_t = F.log_softmax((z_t.unsqueeze(0) - shift * top1) / t, dim=2)
        log_p_s = F.log_softmax((logits_student.unsqueeze(0) - shift * label) / t, dim=2)
        kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(2)
        return self.loss_weight * t * t * kl.mean()
