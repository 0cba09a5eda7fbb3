"""Vanilla knowledge distillation (Hinton et al., 2015; catalogue id ``hinton2015distilling``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._sources import MDISTILLER, MDISTILLER_CFG, REPDISTILLER, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("kd", paper="hinton2015distilling")
class KD(DistillationLoss):
    r"""Vanilla knowledge distillation (Hinton et al., 2015; catalogue id ``hinton2015distilling``).

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{B}\sum_b
              \mathrm{KL}\big(\sigma(z^t_b/T)\,\|\,\sigma(z^s_b/T)\big)

    The :math:`T^2` factor keeps gradient magnitudes comparable across temperatures (paper, Sec. 2).

    Args:
        temperature: softening temperature ``T`` (4: RepDistiller ``--kd_T``, mdistiller CIFAR-100;
            1 on ImageNet).
        loss_weight: ``w``, multiplies the whole loss (0.9 beside a label term of 0.1: RepDistiller
            ``-r 0.1 -a 0.9``; 0.5 and 0.5 on ImageNet).

    Notes:
        Shapes: ``logits_student`` and ``logits_teacher`` are ``(B, C)``; returns a scalar.
        Checked against mdistiller ``kd_loss`` (megvii-research/mdistiller) and RepDistiller
        ``DistillKL``.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L5 (-r 0.1 -a 0.9); {REPDISTILLER} train_student.py:L78 (--kd_T 4); "
            f"{MDISTILLER_CFG}:L61-64",
            task_weight=0.1,
            note="Hinton et al. released no code; these are the common libraries' CIFAR-100 recipe",
        ),
        "imagenet": Preset(
            source=f"{MDISTILLER} configs/imagenet/r34_r18/kd.yaml:L23-27",
            kwargs={"temperature": 1.0, "loss_weight": 0.5},
            task_weight=0.5,
        ),
        "segmentation": Preset(
            source="winycg/CIRKD@05a2753 train_cirkd.py:L79, L83, L232 (pixel-wise KD: "
            "--kd-temperature 1, --lambda-kd 1)",
            kwargs={"temperature": 1.0, "loss_weight": 1.0},
            note="Cityscapes; the pixel-wise KD baseline the dense-prediction papers train beside "
            "their own terms",
        ),
    }

    def __init__(self, temperature: float = 4.0, loss_weight: float = 0.9):
        super().__init__()
        self.temperature = temperature
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
        log_p_s = F.log_softmax(logits_student / t, dim=1)
        log_p_t = F.log_softmax(logits_teacher.detach() / t, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return self.loss_weight * t * t * kl
