"""Attention-guided feature distillation, AttnFD ("Attention as Geometric Transformation: Revisiting Feature Distillation for Semantic Segmentation", Mansourian et al., WACV 2026 workshops; first released as "Attention-guided Feature Distillation for Semantic Segmentation", arXiv 2403.05451; catalogue id ``mansourian2026attention``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs, conv_bn_connector
from kdsurvey.losses._checks import check_layers, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset, layers_example
from kdsurvey.losses.registry import register


class _CBAM(nn.Module):
    """Convolutional block attention (channel gate, then spatial gate). ``learnable=False`` is the
    parameter-free teacher variant of the AttnFD code: identity MLP and a plain sum of the max- and
    mean-pooled channel maps instead of the 7x7 conv."""

    def __init__(self, channels: int, reduction: int = 16, learnable: bool = True):
        super().__init__()
        self.mlp = self.spatial = None
        if learnable:
            hidden = max(1, channels // reduction)
            self.mlp = nn.Sequential(
                nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
            )
            self.spatial = nn.Sequential(
                nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1, momentum=0.01)
            )

    def forward(self, x: Tensor) -> Tensor:
        avg = F.adaptive_avg_pool2d(x, 1)
        mx = F.adaptive_max_pool2d(x, 1)
        if self.mlp is not None:
            gate = (self.mlp(avg) + self.mlp(mx))[:, :, None, None]
        else:
            gate = avg + mx
        x = x * torch.sigmoid(gate)
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        spatial = self.spatial(pooled) if self.spatial is not None else pooled.sum(1, keepdim=True)
        return x * torch.sigmoid(spatial)


@register("attnfd", paper="mansourian2026attention")
class AttnFD(DistillationLoss):
    r"""Attention-guided feature distillation, AttnFD ("Attention as Geometric Transformation:
    Revisiting Feature Distillation for Semantic Segmentation", Mansourian et al., WACV 2026
    workshops; first released as "Attention-guided Feature Distillation for Semantic Segmentation",
    arXiv 2403.05451; catalogue id ``mansourian2026attention``).

    CBAM-refined features of both networks, each normalised by its Frobenius norm over the whole
    batch tensor:

    .. math::
        \mathcal{L} = \frac{w}{B}\sum_l \Big\lVert \frac{r(A^s_l)}{\lVert r(A^s_l)\rVert_F}
        - \frac{A^t_l}{\lVert A^t_l\rVert_F}\Big\rVert_F^2

    Args:
        student_channels: the student's channel counts (a sequence, one per layer). Given with
            ``teacher_channels``, the loss owns, per layer, a learnable CBAM on the raw student
            feature (MLP reduction ``reduction``, at least 1 hidden unit; 7x7 spatial conv + BN)
            followed by the connector ``r`` (1x1 conv, no bias, + BN, He-normal init), and applies
            the official parameter-free teacher CBAM to the raw teacher feature. ``None`` (default):
            both inputs are already refined (and connected).
        teacher_channels: the teacher's channel counts (a sequence, one per layer): the width the
            connectors map to. Give it together with ``student_channels``, or leave both ``None``.
        reduction: CBAM channel reduction (default 16).
        loss_weight: ``w`` = ``attn_lambda`` (2, the official default).

    Notes:
        Shapes: lists of ``(B, C, H, W)``, equal shapes per layer after the modules; returns a scalar.

        Checked against AmirMansurian/AttnFD ``distiller.py`` (``Distiller.forward``) with ``cbam.py``.
        The whole-batch norm follows the code (the paper's text does not say per sample).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "pascal_voc": Preset(
            source="AmirMansurian/AttnFD@f090bbe train_kd.py:L256 (--attn_lambda 2); README.md:L42",
            note="beside the segmentation loss, with the student's own training recipe",
        ),
    }

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        reduction: int = 16,
        loss_weight: float = 2.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.student_cbams = self.teacher_cbams = self.connectors = None
        if pairs is not None:
            self.student_cbams = nn.ModuleList(_CBAM(s, reduction) for s, _ in pairs)
            self.teacher_cbams = nn.ModuleList(_CBAM(t, learnable=False) for _, t in pairs)
            self.connectors = nn.ModuleList(conv_bn_connector(s, t) for s, t in pairs)

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_layers(feats_student, feats_teacher)
        feats_teacher = [t.detach() for t in feats_teacher]
        if self.connectors is not None:
            if len(self.connectors) != len(feats_student):
                raise ValueError(f"{len(self.connectors)} connectors, {len(feats_student)} layers")
            feats_student = [
                r(a(f))
                for r, a, f in zip(self.connectors, self.student_cbams, feats_student, strict=True)
            ]
            feats_teacher = [a(f) for a, f in zip(self.teacher_cbams, feats_teacher, strict=True)]
        total = 0.0
        for s, t in zip(feats_student, feats_teacher, strict=True):
            check_same_shape(s, t, "feature")
            total = total + (s / s.norm() - t / t.norm()).pow(2).sum() / s.shape[0]
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return layers_example(batch, dtype, generator, large, layers=2)
