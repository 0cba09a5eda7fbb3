"""*Intra-class Feature Variation Distillation for Semantic Segmentation* (Wang et al., ECCV 2020; catalogue id ``wang2020intra``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense, check_label_map
from kdsurvey.losses._labels import class_masks, class_prototypes, resize_labels
from kdsurvey.losses.base import DistillationLoss, Preset, feature_label_map_example
from kdsurvey.losses.registry import register


@register("ifvd", paper="wang2020intra")
class IFVD(DistillationLoss):
    r"""*Intra-class Feature Variation Distillation for Semantic Segmentation* (Wang et al., ECCV
    2020; catalogue id ``wang2020intra``).

    Labels are nearest-resized to the feature size. For each image and class :math:`k` the
    prototype is :math:`c_k = \sum_{i\in k} f_i / (|k| + 10^{-6})`; every pixel of class
    :math:`k` gets :math:`c_{y_i}` (pixels of no class keep their own feature) and the intra-class
    feature variation map is :math:`m_i = \cos(f_i, c_{y_i})` (eps :math:`10^{-8}`):

    .. math:: \mathcal{L}_{ifv} = \frac{w}{BHW}\sum_{b,i}(m^s_{b,i} - m^t_{b,i})^2

    Args:
        num_classes: ``K``; labels outside ``[0, K)`` (e.g. 255 = ignore) belong to no class.
        loss_weight: ``w`` (:math:`\lambda_{ifv}`, 200: the official Cityscapes default).

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)``, ``target``
        ``(B, H, W)`` int64; returns a scalar. Checked against YukangWang/IFVD ``utils/criterion.py``
        ``CriterionIFV`` (and winycg/CIRKD ``losses/ifvd.py``); the class loop is vectorised with
        one-hot masks (the masks are disjoint, so the result is identical).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cityscapes": Preset(
            source="YukangWang/IFVD@950a7a5 options.py:L102 (--lambda-ifv 200)",
            note="beside pixel-wise KD (--lambda-kd 10, L89) and an adversarial term "
            "(--lambda-d 0.1, L98), separate losses here",
        ),
    }

    def __init__(self, num_classes: int = 5, loss_weight: float = 200.0):
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight

    def _variation_map(self, feat: Tensor, masks: Tensor) -> Tensor:
        prototypes = class_prototypes(feat, masks)
        centres = feat * (1 - masks.sum(dim=1, keepdim=True)) + torch.einsum(
            "bkhw,bkc->bchw", masks, prototypes
        )
        return F.cosine_similarity(feat, centres, dim=1, eps=1e-8)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.
            target: (B, H, W) int64 label map (255 = ignored).

        Returns:
            The scalar loss.
        """
        check_dense(feat_student, feat_teacher, "features")
        check_label_map(target, feat_student.shape[0])
        labels = resize_labels(target, feat_student.shape[2:])
        masks = class_masks(labels, self.num_classes, feat_student.dtype)
        m_s = self._variation_map(feat_student, masks)
        m_t = self._variation_map(feat_teacher.detach(), masks)
        return self.loss_weight * F.mse_loss(m_s, m_t)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return feature_label_map_example(batch, dtype, generator, large, classes=5)
