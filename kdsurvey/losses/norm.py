"""N-to-one representation matching ("NORM: Knowledge Distillation via N-to-One Representation Matching", Liu et al., ICLR 2023; catalogue id ``liu2023norm``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_leading_dims
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("norm", paper="liu2023norm")
class NORM(DistillationLoss):
    r"""N-to-one representation matching ("NORM: Knowledge Distillation via N-to-One Representation
    Matching", Liu et al., ICLR 2023; catalogue id ``liu2023norm``).

    The student's feature is expanded to ``N`` times the teacher's channels; each of the ``N``
    consecutive channel groups must match the whole teacher feature:

    .. math:: \mathcal{L} = w\,\frac{1}{B C_t H W}\sum_{j=1}^{N}\big\lVert S^{(j)} - T\big\rVert_2^2

    (the official ``mse_loss(S, T.repeat(1, N, 1, 1)) * N``).

    Args:
        n_copies: ``N`` (official ``co_sponge``, default 4).
        student_channels: the student's channel count. With ``teacher_channels`` the loss owns the
            expansion layer, 1x1 conv (no bias) + BN from ``C_s`` to ``N C_t`` (the official
            ``layer31``; PyTorch default init). The official student also contracts the expanded
            feature back into the network (``layer32`` with a residual); that is architecture, not
            loss, and is left to the student. ``None`` (default): ``feat_student`` is already
            expanded.
        teacher_channels: the teacher's channel count ``C_t``: the expansion produces ``n_copies``
            times as many channels. Give it together with ``student_channels``, or leave both
            ``None``.
        loss_weight: ``w`` (official ``beta * beta1``: ``-b 1.0`` times a stepped schedule).

    Notes:
        Shapes: ``feat_student`` ``(B, N C_t, H, W)`` (raw ``(B, C_s, H, W)`` with the expansion),
        ``feat_teacher`` ``(B, C_t, kH, kW)``: a teacher ``k`` times larger spatially is max-pooled
        (kernel and stride ``k``) first. Returns a scalar.

        Checked against OSVAI/NORM ``helper/loops.py`` (CIFAR branch). The student input legitimately
        has ``N`` times the teacher's channels, so "student equals teacher" is undefined for the
        generic property test (``zero_at_match = False``); the loss is 0 when every group equals the
        teacher.
    """

    zero_at_match = False  # inputs of different shapes; zero when each of the N groups equals T

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="OSVAI/NORM@c6dfc39 README.md:L31-32 (-r 0.1 -a 0 -b 1.0); "
            "train_cifar_student.py:L86 (--co-sponge 4); helper/loops.py:L114-124 (beta1)",
            task_weight=0.1,
            note="beta1 steps 0.1, 0.5, 1 at epochs 0, 10, 20 and back to 0.5, 0.1 at 180, 210; "
            "the README's ResNet32x4 to ResNet8x4 example passes -s 8 (n_copies 8)",
        ),
    }

    def __init__(
        self,
        n_copies: int = 4,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.n_copies = n_copies
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.expand = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.expand = nn.Sequential(
                nn.Conv2d(c_s, n_copies * c_t, 1, bias=False), nn.BatchNorm2d(n_copies * c_t)
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
        if self.expand is not None:
            feat_student = self.expand(feat_student)
        feat_teacher = feat_teacher.detach()
        k = feat_teacher.shape[2] // feat_student.shape[2]
        if k > 1:
            feat_teacher = F.max_pool2d(feat_teacher, k, k)
        b, c, h, w = feat_teacher.shape
        n = self.n_copies
        if tuple(feat_student.shape) != (b, n * c, h, w):
            raise ValueError(
                f"student feature must have {n} x the teacher's channels at the teacher's size: "
                f"student {tuple(feat_student.shape)} vs teacher {tuple(feat_teacher.shape)}"
            )
        # each of the N groups against the teacher, broadcast without materialising the repeat
        target = feat_teacher.unsqueeze(1).expand(b, n, c, h, w)
        return self.loss_weight * F.mse_loss(feat_student.view(b, n, c, h, w), target) * n

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        b, c, h = (64, 256, 16) if large else (batch, 4, 4)
        return {
            "feat_student": torch.randn(b, 4 * c, h, h, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(b, c, h, h, generator=generator, dtype=dtype),
        }
