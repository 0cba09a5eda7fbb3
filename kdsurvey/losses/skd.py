"""Pixel-wise distillation of *Structured Knowledge Distillation for Semantic Segmentation* (Liu et al., CVPR 2019; catalogue id ``liu2019structured``)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense, check_same_shape
from kdsurvey.losses.base import DistillationLoss, Preset, score_maps_example
from kdsurvey.losses.registry import register


def _pixel_similarity(feat: Tensor, detach_norm: bool = False, eps: float = 1e-8) -> Tensor:
    """Cosine similarity between all positions of each map: ``(B, HW, HW)``.

    The norm is ``sqrt(sum_c f^2) + eps`` (as in the SKD code); ``detach_norm`` treats it as a
    constant in the backward pass, as the official SKD pair-wise loss does.
    """
    norm = feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps
    if detach_norm:
        norm = norm.detach()
    flat = (feat / norm).flatten(2)
    return flat.transpose(1, 2) @ flat


@register("skd_pixel", paper="liu2019structured")
class SKDPixel(DistillationLoss):
    r"""Pixel-wise distillation of *Structured Knowledge Distillation for Semantic Segmentation*
    (Liu et al., CVPR 2019; catalogue id ``liu2019structured``).

    .. math:: \mathcal{L}_{pi} = \frac{w}{HW}\sum_{b=1}^{B}\sum_{i=1}^{HW}\sum_{k=1}^{K}
        -\,\sigma(z^t_{b,i})_k \log \sigma(z^s_{b,i})_k

    The paper writes a per-pixel KL divergence averaged over pixels; the official code computes the
    cross-entropy against the teacher's soft labels (KL plus the teacher's entropy, a constant for
    the student, so the gradient is the same) and sums, rather than averages, over the batch. The
    default reproduces the code, which is why the loss is not zero when the student equals the
    teacher.

    Args:
        loss_weight: ``w`` (:math:`\lambda_{pi}`, 10: the official Cityscapes default).

    Notes:
        Shapes: ``logits_student``, ``logits_teacher``: ``(B, K, H, W)``; returns a scalar.
        Checked against irfanICMLL/structure_knowledge_distillation ``utils/criterion.py``
        ``CriterionPixelWise`` (reference cases ``skd_pixel``).
    """

    zero_at_match = False  # cross-entropy: its minimum is the teacher's entropy

    presets: ClassVar[dict[str, Preset]] = {
        "cityscapes": Preset(
            source="irfanICMLL/structure_knowledge_distillation@ce208e1 utils/train_options.py:L57 (--lambda-pi 10)",
            note="beside pair-wise (--lambda-pa 1) and adversarial (--lambda-d 0.1) terms",
        ),
    }

    def __init__(self, loss_weight: float = 10.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C, H, W) student score maps.
            logits_teacher: (B, C, H, W) teacher score maps.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        if logits_student.dim() != 4:
            raise ValueError(
                f"skd_pixel takes (B, C, H, W) score maps (dense prediction), got logits of shape "
                f"{tuple(logits_student.shape)}; for (B, C) classification logits use 'kd'"
            )
        p_t = F.softmax(logits_teacher.detach(), dim=1)
        ce = -(p_t * F.log_softmax(logits_student, dim=1)).sum()
        h, w = logits_student.shape[2:]
        return self.loss_weight * ce / (h * w)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return score_maps_example(batch, dtype, generator, large)


@register("skd_pa", paper="liu2019structured")
class SKDPairwise(DistillationLoss):
    r"""Pair-wise distillation of *Structured Knowledge Distillation for Semantic Segmentation*
    (Liu et al., CVPR 2019; catalogue id ``liu2019structured``).

    Both feature maps are max-pooled into patches (kernel = stride =
    ``(int(H*scale), int(W*scale))``, ceil mode); with :math:`\hat f_i = f_i/(\|f_i\|_2+10^{-8})`
    over channels and :math:`a_{ij} = \hat f_i^\top \hat f_j` over the :math:`N'=H'W'` pooled
    positions,

    .. math:: \mathcal{L}_{pa} = \frac{w}{B\,N'^2}\sum_{b}\sum_{i,j}(a^t_{b,ij}-a^s_{b,ij})^2

    As in the official code the normaliser :math:`\|f_i\|` is treated as a constant in the backward
    pass (detached), which changes the gradient but not the value; the official code also casts
    to float32, this one keeps the input dtype. winycg/CIRKD ``CriterionStructuralKD`` differs
    (fixed 2x2 pooling, normaliser not detached, mean instead of ``/N'^2/B``).

    Args:
        scale: pooling patch size as a fraction of the feature size (0.5: 2x2 patches of nodes).
        loss_weight: ``w`` (:math:`\lambda_{pa}`, 1 in the paper).

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
        differ); returns a scalar. Checked against irfanICMLL/structure_knowledge_distillation
        ``utils/criterion.py`` ``CriterionPairWiseforWholeFeatAfterPool`` / ``utils/utils.py``
        ``sim_dis_compute`` (spec ``skd_pa``). A patch size that rounds to 0 is raised to 1.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cityscapes": Preset(
            source="irfanICMLL/structure_knowledge_distillation@ce208e1 utils/train_options.py:L58-59 (--lambda-pa 1, --pool-scale 0.5)",
            note="beside pixel-wise (--lambda-pi 10) and adversarial (--lambda-d 0.1) terms",
        ),
    }

    def __init__(self, scale: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        self.scale = scale
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_dense(feat_student, feat_teacher, "features")
        teacher = feat_teacher.detach()
        h, w = teacher.shape[2:]
        kernel = (max(1, int(h * self.scale)), max(1, int(w * self.scale)))
        student = F.max_pool2d(feat_student, kernel, kernel, ceil_mode=True)
        teacher = F.max_pool2d(teacher, kernel, kernel, ceil_mode=True)
        diff = _pixel_similarity(teacher, detach_norm=True) - _pixel_similarity(
            student, detach_norm=True
        )
        nodes = teacher.shape[2] * teacher.shape[3]
        return self.loss_weight * diff.pow(2).sum() / nodes**2 / teacher.shape[0]
