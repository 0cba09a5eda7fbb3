"""Angular distillation of raw features ("Rethinking Knowledge Distillation with Raw Features for Semantic Segmentation", Liu et al., WACV 2024; catalogue id ``liu2024rethinking``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import apply_optional, channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("rawkd", paper="liu2024rethinking", evidence="paper")
class RawKD(DistillationLoss):
    r"""Angular distillation of raw features ("Rethinking Knowledge Distillation with Raw Features
    for Semantic Segmentation", Liu et al., WACV 2024; catalogue id ``liu2024rethinking``).

    FitNets' squared error splits into a magnitude term and an angular term,
    :math:`\lVert s-t\rVert^2 = (\lVert s\rVert-\lVert t\rVert)^2 + 2\lVert s\rVert\lVert t\rVert
    (1-\cos\theta)`, whose weight depends on the feature magnitudes. The method keeps only the
    angular information, free of that magnitude weight, along the channel and spatial dimensions:

    .. math::
        \mathcal{L} = w\Big(\lambda_c\,\frac{1}{BHW}\sum_{b,p}\big(1-\cos(s_{b,:,p}, t_{b,:,p})\big)
            + \lambda_s\,\frac{1}{BC}\sum_{b,c}\big(1-\cos(s_{b,c,:}, t_{b,c,:})\big)\Big)

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns a 1x1 conv (with bias, PyTorch default init) mapping the student to the
            teacher's channels. ``None`` (default): no adapter, the student input is already
            adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        channel_weight: :math:`\lambda_c`, angle between per-pixel channel vectors (default 1).
        spatial_weight: :math:`\lambda_s`, angle between per-channel spatial maps (default 1).
        loss_weight: ``w`` (default 1; the paper reports robustness to this weight).

    Notes:
        Shapes: ``feat_student`` ``(B, C_s, H, W)``, ``feat_teacher`` ``(B, C_t, H, W)``. Returns a
        scalar. No code was released; written from the paper. Uncertain: the paper explores angular
        distillation along different dimensions and the combination kept by default here (both, equal
        weights) and the averaging are inferred; set either weight to 0 for a single dimension.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        channel_weight: float = 1.0,
        spatial_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.channel_weight, self.spatial_weight = channel_weight, spatial_weight
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.connector = None if pairs is None else nn.Conv2d(*pairs[0], kernel_size=1)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        s = apply_optional(self.connector, feat_student)
        check_same_shape(s, feat_teacher, "feature")
        t = feat_teacher.detach()
        channel = 1 - F.cosine_similarity(s, t, dim=1).mean()
        spatial = 1 - F.cosine_similarity(s.flatten(2), t.flatten(2), dim=2).mean()
        return self.loss_weight * (self.channel_weight * channel + self.spatial_weight * spatial)
