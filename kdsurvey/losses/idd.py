"""Inter-class distance distillation of *Distilling Inter-Class Distance for Semantic Segmentation* (Zhang et al., IJCAI 2022; catalogue id ``zhang2022distilling``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdsurvey.losses._checks import check_dense, check_label_map
from kdsurvey.losses._labels import class_masks, class_prototypes, resize_labels
from kdsurvey.losses.base import DistillationLoss, feature_label_map_example
from kdsurvey.losses.registry import register


@register("idd", paper="zhang2022distilling", evidence="paper")
class IDD(DistillationLoss):
    r"""Inter-class distance distillation of *Distilling Inter-Class Distance for Semantic
    Segmentation* (Zhang et al., IJCAI 2022; catalogue id ``zhang2022distilling``).

    Labels are nearest-resized to the feature size; :math:`v_k` is the mean feature of class
    :math:`k` in an image (as in IFVD), :math:`e_{kl} = \|v_k - v_l\|_2` the distance between two
    class centres, and :math:`\mathcal{P}` the (image, class pair :math:`k<l`) entries where both
    classes occur in the image:

    .. math:: \mathcal{L} = \frac{w}{|\mathcal{P}|}\sum_{(b,k,l)\in\mathcal{P}}
        (e^t_{b,kl} - e^s_{b,kl})^2

    The student learns the teacher's geometry of the class centres (how far apart classes are in
    feature space) rather than the features themselves. No official code: the Euclidean distance,
    the per-image centres from ground-truth labels, the restriction to classes present and the
    mean over pairs are inferred from the paper's description. The paper's second component,
    position information distillation (a separately trained position-encoding network whose
    predictions are matched), is not included: its network and training are not specified
    precisely enough to reproduce.

    Args:
        num_classes: ``K``; labels outside ``[0, K)`` (e.g. 255) belong to no class (19).
        student_channels: C_s, the student's channel count. Given with ``teacher_channels``, the
            loss owns a 1x1 convolution (PyTorch default init) mapping the student features to the
            teacher width first (the distances are comparable without it, so none is applied by
            default). ``None`` (default): no adapter, the student input is already adapted.
        teacher_channels: C_t, the teacher's channel count: the width the adapter maps the student
            to. Give it together with ``student_channels``, or leave both ``None``.
        loss_weight: ``w``.

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)``, ``target``
        ``(B, H, W)`` int64; returns a scalar (zero when no image has two classes).
    """

    def __init__(
        self,
        num_classes: int = 19,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.connector: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None:
            self.connector = nn.Conv2d(student_channels, teacher_channels, 1)

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
        student = self.connector(feat_student)
        labels = resize_labels(target, student.shape[2:])
        masks = class_masks(labels, self.num_classes, student.dtype)
        present = masks.sum(dim=(2, 3)) > 0  # (B, K)
        first, second = torch.triu_indices(
            self.num_classes, self.num_classes, offset=1, device=labels.device
        )
        valid = present[:, first] & present[:, second]  # (B, P)
        if not bool(valid.any()):
            return 0.0 * student.sum()

        def distances(feat: Tensor) -> Tensor:
            centres = class_prototypes(feat, masks)
            squared = (centres[:, first] - centres[:, second]).pow(2).sum(dim=2)
            return torch.where(valid, squared, torch.ones_like(squared)).sqrt()

        diff = (distances(feat_teacher.detach()) - distances(student)).pow(2)
        return self.loss_weight * diff[valid].mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return feature_label_map_example(batch, dtype, generator, large, classes=5)
