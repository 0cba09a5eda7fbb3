"""Channel correlation distillation of *Channel Correlation Distillation for Compact Semantic Segmentation* (Wang et al., IJPRAI 2023; catalogue id ``wang2023channel``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("ccd", paper="wang2023channel", evidence="paper")
class CCD(DistillationLoss):
    r"""Channel correlation distillation of *Channel Correlation Distillation for Compact Semantic
    Segmentation* (Wang et al., IJPRAI 2023; catalogue id ``wang2023channel``).

    With each channel map :math:`f_c` flattened over positions and L2 normalised,
    :math:`G_{cd} = \hat f_c^\top \hat f_d` is the :math:`C\times C` channel correlation (how
    likely two channels respond to the same categories):

    .. math:: \mathcal{L} = \frac{w}{BC^2}\sum_b\|G^s_b - G^t_b\|_F^2

    No official code: the cosine (per-channel normalised) correlation and the mean squared
    distance are inferred from the paper's description. The paper also trains multi-scale
    discriminators adversarially on the segmentation outputs; that adversarial game (its own
    networks and optimiser) is a training scheme, not part of this distillation term.

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns a 1x1 convolution (PyTorch default init) mapping the student features to the
            teacher width. ``None`` (default): no adapter, the student input is already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w``.

    Notes:
        Shapes: ``feat_student`` ``(B, C, H, W)``, ``feat_teacher`` ``(B, C, H', W')`` (spatial sizes
        may differ: the correlation is over channels); returns a scalar.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.connector: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1)

    @staticmethod
    def _correlation(feat: Tensor) -> Tensor:
        flat = F.normalize(feat.flatten(2), dim=2)
        return flat @ flat.transpose(1, 2)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        if feat_student.dim() != 4 or feat_student.shape[0] != feat_teacher.shape[0]:
            raise ValueError(
                f"features shapes differ: student {tuple(feat_student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        student = self.connector(feat_student)
        if student.shape[:2] != feat_teacher.shape[:2]:
            raise ValueError(
                f"channel counts differ: student {tuple(student.shape)} vs teacher "
                f"{tuple(feat_teacher.shape)} (give student_channels and teacher_channels)"
            )
        diff = self._correlation(student) - self._correlation(feat_teacher.detach())
        return self.loss_weight * diff.pow(2).mean()
