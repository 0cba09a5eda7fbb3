"""Simple recipe distillation, representation term ("Understanding the Role of the Projector in Knowledge Distillation", Miles & Mikolajczyk, AAAI 2024; catalogue id ``miles2024understanding``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("srd", paper="miles2024understanding")
class SRD(DistillationLoss):
    r"""Simple recipe distillation, representation term ("Understanding the Role of the Projector in
    Knowledge Distillation", Miles & Mikolajczyk, AAAI 2024; catalogue id
    ``miles2024understanding``).

    Both embeddings are batch-normalised without affine parameters (batch statistics, biased
    variance, :math:`\epsilon = 10^{-4}`) and compared with a log of the summed fourth powers:

    .. math:: \mathcal{L} = 2\,w\,\log \sum_{b,d}\big|\mathrm{BN}(P(z^s))_{bd} -
              \mathrm{BN}(z^t)_{bd}\big|^4

    Args:
        student_channels: C_s, the student's embedding width. Given with ``teacher_channels``, the
            loss owns the projector ``P``, a linear layer ``C_s -> C_t`` with bias (PyTorch default
            init), as the official ``embed``. ``None`` (default): no adapter, the student input is
            already adapted.
        teacher_channels: C_t, the teacher's embedding width: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        eps: BN epsilon (default 1e-4, official).
        loss_weight: ``w`` (1, the official ImageNet factor).

    Notes:
        Shapes: ``feat_student`` ``(B, C_s)`` and ``feat_teacher`` ``(B, C_t)`` pooled embeddings (maps
        ``(B, C, H, W)`` are averaged over positions first, as the official forward does); ``B > 1``.
        Returns a scalar.

        Checked against roymiles/Simple-Recipe-Distillation ``imagenet/torchdistill/losses/single.py``
        (``OurDistillationLoss.forward_loss``, times 2 as in its ``forward``). The KD term on logits of
        the same forward is the separate ``kd`` loss (T = 1). The official BN modules would switch to
        running statistics in eval mode; batch statistics are always used here, so the value is a
        function of the inputs only. The DeiT variant of the same repository (cross-correlation form) is
        not reproduced. The minimum is :math:`-\infty` at a perfect match (``zero_at_match = False``).
    """

    zero_at_match = False  # log(0) = -inf when the normalised embeddings coincide

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="roymiles/Simple-Recipe-Distillation@31e8477 "
            "imagenet/configs/ilsvrc2012/ours/res3418.yaml:L100-131 (CrossEntropyLoss factor 1.0, "
            "OurDistillationLoss factor 1.0)",
        ),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        eps: float = 1e-4,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.projector = None
        if pairs is not None:
            ((c_s, c_t),) = pairs
            self.projector = nn.Linear(c_s, c_t)

    def _bn(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, None, None, training=True, eps=self.eps)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings.
            feat_teacher: (B, D) teacher embeddings.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        if feat_student.dim() > 2:
            feat_student = feat_student.flatten(2).mean(-1)
            feat_teacher = feat_teacher.flatten(2).mean(-1)
        if self.projector is not None:
            feat_student = self.projector(feat_student)
        check_same_shape(feat_student, feat_teacher, "embedding")
        diff = self._bn(feat_student) - self._bn(feat_teacher.detach())
        return self.loss_weight * 2.0 * torch.log(diff.abs().pow(4).sum())

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        b, d = (256, 512) if large else (batch, 16)
        return {
            "feat_student": torch.randn(b, d, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(b, d, generator=generator, dtype=dtype),
        }
