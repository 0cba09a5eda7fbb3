"""Feature distillation through a learnable channel-wise transformation ("A Simple and Generic Framework for Feature Distillation via Channel-wise Transformation", Liu et al., ICCV 2023 Workshops; catalogue id ``liu2023simple``)."""

from __future__ import annotations

from torch import Tensor, nn

from kdsurvey.losses._adapters import apply_optional, channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("channel_transform", paper="liu2023simple", evidence="paper")
class ChannelTransform(DistillationLoss):
    r"""Feature distillation through a learnable channel-wise transformation ("A Simple and Generic
    Framework for Feature Distillation via Channel-wise Transformation", Liu et al., ICCV 2023
    Workshops; catalogue id ``liu2023simple``).

    A two-layer MLP over channels (1x1 convs) transforms only the student's feature, which then
    matches the untouched teacher feature with a plain L2 loss:

    .. math::
        \mathrm{MLP}(F) = W_2\,\sigma(W_1 F),\qquad
        \mathcal{L} = \frac{\alpha}{B}\sum\big(\mathrm{MLP}(F^s) - F^t\big)^2

    Args:
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns the MLP (1x1 conv ``C_s -> hidden``, ReLU, 1x1 conv ``hidden -> C_t``, with
            biases; PyTorch default init). ``None`` (default): no adapter, the student input is
            already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        hidden_channels: MLP width (default ``teacher_channels``).
        loss_weight: :math:`\alpha`, the method's single hyperparameter (default 1; tuned per task).

    Notes:
        Shapes: ``feat_student`` ``(B, C_s, H, W)``, ``feat_teacher`` ``(B, C_t, H, W)``. Returns a
        scalar. No code was released; written from the paper. The hidden width and the reduction
        (summed squared error divided by the batch size, as MGD, whose setting the paper follows) are
        inferred.
    """

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        hidden_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.transform = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            hidden = hidden_channels or c_t
            self.transform = nn.Sequential(
                nn.Conv2d(c_s, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, c_t, 1)
            )

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        feat_student = apply_optional(self.transform, feat_student)
        check_same_shape(feat_student, feat_teacher, "transformed student and teacher feature")
        diff = feat_student - feat_teacher.detach()
        return self.loss_weight * diff.pow(2).sum() / feat_student.shape[0]
