"""X-Ray distillation from an object-complete teacher ("Weak-to-Strong 3D Object Detection with X-Ray Distillation", Gambashidze et al., CVPR 2024; catalogue id ``gambashidze2024weak``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import apply_optional, channel_pairs
from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("xray_kd", paper="gambashidze2024weak", evidence="paper")
class XRayKD(DistillationLoss):
    r"""X-Ray distillation from an object-complete teacher ("Weak-to-Strong 3D Object Detection with
    X-Ray Distillation", Gambashidze et al., CVPR 2024; catalogue id ``gambashidze2024weak``).

    The teacher (same detector, trained on object-complete LiDAR frames) supervises the student,
    which sees ordinary frames, through its dense BEV head outputs and its BEV embeddings:

    .. math::
        \mathcal{L} = w\big(\lambda_{hm}\,\mathrm{MSE}(H^s, H^t) + \lambda_{box}\,
            \mathrm{MSE}(R^s, R^t) + \lambda_{emb}\,\mathrm{MSE}(a(E^s), E^t)\big)

    Args:
        heatmap_weight: :math:`\lambda_{hm}`, weight of the object-heatmap term (1; the paper
            stresses default hyperparameters).
        box_weight: :math:`\lambda_{box}`, weight of the box-regression term (1).
        feature_weight: :math:`\lambda_{emb}`, weight of the embedding (feature) term (1).
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns a 1x1 conv ``a`` (with bias, PyTorch default init) for the embeddings (the
            paper's student and teacher share the architecture, so none by default). ``None``
            (default): no adapter, the student input is already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w`` (default 1).

    Notes:
        Forward: ``logits_student``/``logits_teacher`` ``(B, K, H, W)`` heatmap logits; optional
        ``boxes_student``/``boxes_teacher`` ``(B, R, H, W)`` regression maps; optional
        ``feat_student``/``feat_teacher`` ``(B, C, H', W')`` BEV embeddings. Returns a scalar.

        The released repository (sakharok13/X-Ray-Teacher-Patching-Tools) only builds the
        object-complete frames; the training code is not public, so this follows the paper's description
        (distillation on heads, embeddings and detections). Inferred: MSE on the raw head outputs. The
        third term, the detector's own loss with the teacher's boxes as pseudo-labels, is the detector's
        supervised loss and is left to the detector, as label losses are everywhere in this package.
    """

    def __init__(
        self,
        heatmap_weight: float = 1.0,
        box_weight: float = 1.0,
        feature_weight: float = 1.0,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.heatmap_weight, self.box_weight = heatmap_weight, box_weight
        self.feature_weight, self.loss_weight = feature_weight, loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.adapter = None if pairs is None else nn.Conv2d(*pairs[0], kernel_size=1)

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        boxes_student: Tensor | None = None,
        boxes_teacher: Tensor | None = None,
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C, H, W) student score maps.
            logits_teacher: (B, C, H, W) teacher score maps.
            boxes_student: (B, R, H, W) student box-regression maps; ``None`` leaves the box
                term out.
            boxes_teacher: (B, R, H, W) teacher box-regression maps.
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "heatmap")
        loss = self.heatmap_weight * F.mse_loss(logits_student, logits_teacher.detach())
        for weight, s, t, what in (
            (self.box_weight, boxes_student, boxes_teacher, "box regression map"),
            (self.feature_weight, feat_student, feat_teacher, "BEV embedding"),
        ):
            if (s is None) != (t is None):
                raise ValueError(f"give both student and teacher {what}s, or neither")
            if s is None:
                continue
            check_leading_dims(s, t, what=what)
            if what == "BEV embedding":
                s = apply_optional(self.adapter, s)
            check_same_shape(s, t, what)
            loss = loss + weight * F.mse_loss(s, t.detach())
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, k, r, c, s = (64, 10, 8, 256, 16) if large else (batch, 3, 4, 8, 4)

        def rand(*shape):
            return torch.randn(n, *shape, generator=generator, dtype=dtype)

        return {
            "logits_student": rand(k, s, s),
            "logits_teacher": rand(k, s, s),
            "boxes_student": rand(r, s, s),
            "boxes_teacher": rand(r, s, s),
            "feat_student": rand(c, s, s),
            "feat_teacher": rand(c, s, s),
        }
