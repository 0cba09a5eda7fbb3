"""Masked generative distillation ("Masked Generative Distillation", Yang et al., ECCV 2022; catalogue id ``yang2022masked``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_leading_dims, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


@register("mgd", paper="yang2022masked")
class MGD(DistillationLoss):
    r"""Masked generative distillation ("Masked Generative Distillation", Yang et al., ECCV 2022;
    catalogue id ``yang2022masked``).

    The aligned student feature is randomly masked and a small generator must rebuild the teacher's
    full feature from it:

    .. math:: \mathcal{L} = \frac{w}{N}\sum \big(G(f_{align}(S)\odot M) - T\big)^2

    Args:
        student_channels: the student's channel count. When it differs from ``teacher_channels`` the
            loss owns the 1x1 ``align`` conv (with bias, PyTorch default init, as the official
            ``MGDLoss``).
        teacher_channels: the teacher's channel count. Given, the loss owns the generation block
            ``G`` (3x3 conv, ReLU, 3x3 conv on ``C_t`` channels; PyTorch default init). ``None``
            (default): ``feat_student`` is already the generated feature, no mask and no module are
            applied.
        lambda_mgd: masking ratio :math:`\lambda` (default 0.15, the classification setting;
            detection/segmentation use 0.65/0.75 with the spatial mask).
        mask_type: ``"channel"`` (mask ``(N, C, 1, 1)``, classification) or ``"spatial"`` (``(N, 1,
            H, W)``, detection/segmentation). Default ``"channel"``.
        seed: seeds a private ``torch.Generator`` for the masks (``None``: the global RNG). Masks
            are drawn only in training mode; in eval mode the generator sees the unmasked feature,
            so the value is deterministic.
        loss_weight: ``w`` = :math:`\alpha_{mgd}` (7e-5, the official ImageNet
            classification setting; 2e-5 for Cityscapes segmentation).

    Notes:
        Shapes: ``feat_student`` ``(N, C_s, H, W)``, ``feat_teacher`` ``(N, C_t, H, W)`` (equal without
        modules); returns a scalar.

        Checked against yzd-v/MGD ``cls/mmcls/distillation/losses/mgd.py`` (``MGDLoss``: summed squared
        error divided by ``N``). The mask keeps an element with probability ``1 - lambda_mgd`` (0/1
        values, no rescaling), as the official code.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "imagenet": Preset(
            source="yzd-v/MGD@2c9da0b cls/configs/distillers/mgd/res34_distill_res18_img.py:L14-15 "
            "(alpha_mgd 0.00007, lambda_mgd 0.15)",
        ),
        "cifar100": Preset(
            source="yzd-v/cls_KD@1e5d48f configs/distillers/cifar100/res34_distill_res18_cifar.py:"
            "L41-42 (alpha_mgd 0.0012, lambda_mgd 0.15)",
            kwargs={"loss_weight": 0.0012},
            note="the MGD authors' later classification repository",
        ),
        "segmentation": Preset(
            source="yzd-v/MGD@2c9da0b seg/configs/distillers/mgd/"
            "psp_r101_distill_psp_r18_40k_512x512_city.py:L6-7 (alpha_mgd 0.00002, lambda_mgd 0.75)",
            kwargs={"loss_weight": 2e-5, "lambda_mgd": 0.75, "mask_type": "spatial"},
            note="Cityscapes; the segmentation loss masks positions, not channels",
        ),
    }

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        lambda_mgd: float = 0.15,
        mask_type: str = "channel",
        seed: int | None = None,
        loss_weight: float = 7e-5,
    ):
        super().__init__()
        if mask_type not in ("channel", "spatial"):
            raise ValueError(f"mask_type must be 'channel' or 'spatial', got {mask_type!r}")
        self.lambda_mgd = lambda_mgd
        self.mask_type = mask_type
        self.loss_weight = loss_weight
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.align = self.generation = None
        if teacher_channels is not None:
            if student_channels is not None and student_channels != teacher_channels:
                self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
            self.generation = nn.Sequential(
                nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(teacher_channels, teacher_channels, 3, padding=1),
            )

    def _mask(self, feat: Tensor) -> Tensor:
        n, c, h, w = feat.shape
        shape = (n, c, 1, 1) if self.mask_type == "channel" else (n, 1, h, w)
        u = torch.rand(shape, generator=self._generator)
        return (u >= self.lambda_mgd).to(device=feat.device, dtype=feat.dtype)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_leading_dims(feat_student, feat_teacher)
        if self.align is not None:
            feat_student = self.align(feat_student)
        if self.generation is not None:
            if self.training:
                feat_student = feat_student * self._mask(feat_student)
            feat_student = self.generation(feat_student)
        check_same_shape(feat_student, feat_teacher, "feature")
        sq = F.mse_loss(feat_student, feat_teacher.detach(), reduction="sum")
        return self.loss_weight * sq / feat_student.shape[0]
