"""Knowledge review with the hierarchical context loss ("Distilling Knowledge via Knowledge Review", Chen et al., CVPR 2021; catalogue id ``chen2021distilling``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._adapters import channel_pairs
from kdsurvey.losses._checks import check_layers, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset, layers_example
from kdsurvey.losses.registry import register


class _ABF(nn.Module):
    """Attention-based fusion of ReviewKD: 1x1 conv+BN to ``mid``, optional fusion with the residual
    from the deeper level through two sigmoid attention maps, then 3x3 conv+BN to ``out``."""

    def __init__(self, c_in: int, mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(
            nn.Conv2d(mid, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.att = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size) -> tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att is not None and residual is not None:
            residual = F.interpolate(residual, x.shape[2:], mode="nearest")
            z = self.att(torch.cat([x, residual], dim=1))
            x = x * z[:, :1] + residual * z[:, 1:2]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, tuple(out_size), mode="nearest")
        return self.conv2(x), x


def _hcl_layer(fs: Tensor, ft: Tensor) -> Tensor:
    loss = F.mse_loss(fs, ft)
    weight, total = 1.0, 1.0
    diff = pooled = None
    exact = False  # ``pooled`` averages equal, non-overlapping windows of ``diff``
    h, w = fs.shape[2:]
    for level in (4, 2, 1):
        if level >= h:
            continue
        # pooling is linear: mse(pool(fs), pool(ft)) = mean(pool(fs - ft)^2); and an even pooling
        # of an even pooling is the even pooling of the original, so coarser levels reuse ``pooled``
        if exact and pooled.shape[2] % level == 0 and pooled.shape[3] % level == 0:
            pooled = F.adaptive_avg_pool2d(pooled, (level, level))
        else:
            diff = fs - ft if diff is None else diff
            pooled = F.adaptive_avg_pool2d(diff, (level, level))
            exact = h % level == 0 and w % level == 0
        weight /= 2.0
        loss = loss + weight * pooled.square().mean()
        total += weight
    return loss / total


@register("reviewkd_hcl", paper="chen2021distilling")
class ReviewKDHCL(DistillationLoss):
    r"""Knowledge review with the hierarchical context loss ("Distilling Knowledge via Knowledge
    Review", Chen et al., CVPR 2021; catalogue id ``chen2021distilling``).

    For each layer, the MSE of the maps plus the MSEs of their adaptive-average-pooled versions at
    4x4, 2x2, 1x1 (only the levels smaller than the map), with halving weights:

    .. math::
        \mathcal{L} = w\sum_l \frac{\mathrm{mse}(F^s_l,F^t_l) + \sum_{k} 2^{-k}\,
        \mathrm{mse}(P_{(k)}F^s_l, P_{(k)}F^t_l)}{1+\sum_k 2^{-k}}

    Args:
        student_channels: C_s, the student's channel counts (a sequence, shallow to deep). Given
            with ``teacher_channels``, the loss owns the review path: one attention-based fusion
            (ABF) module per level, from the deepest level up, each fusing the student feature with
            the residual of the level below (1x1 conv+BN, sigmoid attention, 3x3 conv+BN;
            Kaiming-uniform ``a=1`` init, as the official code), and producing the teacher's
            channels at the teacher's spatial size. ``None`` (default): no adapter, the student
            input is already adapted.
        teacher_channels: C_t, the teacher's channel counts (shallow to deep): the width the adapter
            maps the student to. Give it together with ``student_channels``, or leave both ``None``.
        mid_channels: width of the ABF modules (default ``min(512, C_s of the deepest level)``).
        loss_weight: ``w`` (official ``--kd-loss-weight``: 5 for ResNet32x4 to ResNet8x4 and most
            CIFAR-100 pairs, ramped in over 20 epochs; 1 on ImageNet).

    Notes:
        Shapes: lists of ``(B, C, H, W)``; equal shapes per layer after fusion. Returns a scalar.

        Checked against dvlab-research/ReviewKD ``CIFAR-100/model/reviewkd.py`` (``hcl``), identical to
        mdistiller ``hcl_loss``. The linear warm-up factor of the official training is not included.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="dvlab-research/ReviewKD@cede6ea CIFAR-100/script/reviewKD.sh:L7 "
            "(--kd-loss-weight 5.0); CIFAR-100/train.py:L50 (--kd-warm-up 20)",
            warmup_epochs=20,
            note="5 of the script's 8 pairs use 5.0; ShuffleNetV2 8.0, ResNet56/20 0.6, "
            "ResNet110/32 1.0",
        ),
        "imagenet": Preset(
            source="dvlab-research/ReviewKD@cede6ea ImageNet/README.md:L38 "
            "(--review-kd-loss-weight 1.0, ResNet34 to ResNet18; no warm-up in imagenet_amp.py)",
            kwargs={"loss_weight": 1.0},
        ),
    }

    def __init__(
        self,
        student_channels: Sequence[int] | None = None,
        teacher_channels: Sequence[int] | None = None,
        mid_channels: int | None = None,
        loss_weight: float = 5.0,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        pairs = channel_pairs(student_channels, teacher_channels)
        self.abfs = None
        if pairs is not None:
            mid = mid_channels or min(512, pairs[-1][0])
            n = len(pairs)
            self.abfs = nn.ModuleList(
                _ABF(s, mid, t, fuse=i < n - 1) for i, (s, t) in enumerate(pairs)
            )

    def review(self, feats_student: list[Tensor], out_sizes) -> list[Tensor]:
        """Run the review path (deepest level first) and return outputs in shallow-to-deep order."""
        outs, residual = [], None
        for i in reversed(range(len(feats_student))):
            out, residual = self.abfs[i](feats_student[i], residual, out_sizes[i])
            outs.append(out)
        return outs[::-1]

    def forward(self, feats_student: list[Tensor], feats_teacher: list[Tensor]) -> Tensor:
        """The loss of one batch.

        Args:
            feats_student: list of (B, C_l, H_l, W_l) student feature maps, one per layer.
            feats_teacher: list of (B, C_l, H_l, W_l) teacher feature maps, one per layer.

        Returns:
            The scalar loss.
        """
        check_layers(feats_student, feats_teacher)
        if self.abfs is not None:
            if len(self.abfs) != len(feats_student):
                raise ValueError(f"{len(self.abfs)} review modules for {len(feats_student)} layers")
            feats_student = self.review(feats_student, [t.shape[2:] for t in feats_teacher])
        total = 0.0
        for fs, ft in zip(feats_student, feats_teacher, strict=True):
            check_same_shape(fs, ft, "feature")
            total = total + _hcl_layer(fs, ft.detach())
        return self.loss_weight * total

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return layers_example(batch, dtype, generator, large, layers=3)
