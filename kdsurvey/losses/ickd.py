"""Inter-Channel Correlation KD (Liu et al., ICCV 2021; catalogue id ``liu2021exploring``, "Exploring Inter-Channel Correlation for Diversity-Preserved Knowledge Distillation")."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_batch, check_same_dims
from kdsurvey.losses._relations import flatten_positions
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("ickd", paper="liu2021exploring")
class ICKD(DistillationLoss):
    r"""Inter-Channel Correlation KD (Liu et al., ICCV 2021; catalogue id ``liu2021exploring``,
    "Exploring Inter-Channel Correlation for Diversity-Preserved Knowledge Distillation").

    Inter-channel Gram matrix over spatial positions with L2-normalised rows,
    :math:`\tilde G = \mathrm{rownorm}(F F^\top)\in\mathbb R^{B\times C\times C}`, and

    .. math:: \mathcal{L} = \frac{w}{C B}\sum_{b,i,j}(\tilde G^s_{bij}-\tilde G^t_{bij})^2

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns the paper's embedding (1x1 conv without bias, PyTorch default init, then
            BatchNorm2d) mapping the student to the teacher's channel count (the reference cases
            feed embedded features). ``None`` (default): no adapter, the student input is already
            adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w`` (2.5, the authors' CIFAR-100 ``-b``; their ``train_student.sh`` uses 4).

    Notes:
        Shapes: ``(B, C, H_s, W_s)`` and ``(B, C, H_t, W_t)`` (spatial sizes may differ). Checked
        against ADLab-AutoDrive/ICKD ``Cifar100/distiller_zoo/ICKD.py`` (``batch_loss``). The same
        repository's ImageNet code (and torchdistill ``ChSimLoss``) divide by :math:`C B^2`; the
        default follows the CIFAR code of the reference case.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="ADLab-AutoDrive/ICKD@403b8d3 Cifar100/README.md:L40 and "
            "Cifar100/scripts/run_cifar_distill.sh:L35 (-a 0 -b 2.5)",
            note="Cifar100/train_student.sh:L6 passes -b 4 instead",
        ),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 2.5,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.embed = None
        if student_channels is not None and teacher_channels is not None:
            self.embed = nn.Sequential(
                nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
                nn.BatchNorm2d(teacher_channels),
            )

    @staticmethod
    def channel_gram(x: Tensor) -> Tensor:
        f = flatten_positions(x)
        return F.normalize(torch.bmm(f, f.transpose(1, 2)), dim=2)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "ICKD feature")
        s = self.embed(feat_student) if self.embed is not None else feat_student
        check_same_dims(s, feat_teacher, (0, 1), "ICKD feature (batch and channels)")
        b, c = s.shape[:2]
        diff = self.channel_gram(s) - self.channel_gram(feat_teacher.detach())
        return self.loss_weight * diff.pow(2).sum() / (c * b)
