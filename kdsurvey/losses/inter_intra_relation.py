"""*Knowledge Distillation via Inter- and Intra-Samples Relation Transferring* (ICNC-FSKD 2024; catalogue id ``unknown2024knowledge``), a guess from the title alone."""

from __future__ import annotations

from torch import Tensor

from kdsurvey.losses._checks import check_dense
from kdsurvey.losses._relations import cosine_matrix, position_affinity
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("inter_intra_relation", paper="unknown2024knowledge", evidence="title")
class InterIntraRelation(DistillationLoss):
    r"""*Knowledge Distillation via Inter- and Intra-Samples Relation Transferring* (ICNC-FSKD
    2024; catalogue id ``unknown2024knowledge``).

    **A placeholder reconstructed from the title only**: the student matches the teacher's
    relations *between* the samples of a batch and *inside* each sample. Inter-sample: the
    :math:`B\times B` cosine similarity :math:`G = \hat f \hat f^\top` of the flattened feature
    maps. Intra-sample: the :math:`HW\times HW` cosine similarity :math:`A_b` between the positions
    of sample :math:`b`'s map (channel vectors L2-normalised):

    .. math:: \mathcal{L} = w_{inter}\,\frac{1}{B^2}\|G^t - G^s\|_F^2
        + w_{intra}\,\frac1B\sum_b \frac{1}{(HW)^2}\|A^t_b - A^s_b\|_F^2

    Args:
        inter_weight: :math:`w_{inter}`, weight of the between-samples term (1).
        intra_weight: :math:`w_{intra}`, weight of the within-sample term (1).

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths
        may differ, spatial sizes must agree); returns a scalar.

        Inferred from the title alone: neither code, full text nor abstract was found (see the
        record's ``unconfirmed`` fields). Every choice here is a guess: which features, cosine
        similarity as the relation, positions as the parts of a sample, the squared distance, the
        weights. Replace it once the paper can be read.
    """

    def __init__(self, inter_weight: float = 1.0, intra_weight: float = 1.0):
        super().__init__()
        self.inter_weight = inter_weight
        self.intra_weight = intra_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, Cs, H, W) student feature map.
            feat_teacher: (B, Ct, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_dense(feat_student, feat_teacher, "inter/intra relation feature")
        feat_teacher = feat_teacher.detach()
        inter = (cosine_matrix(feat_teacher) - cosine_matrix(feat_student)).pow(2).mean()
        intra_diff = position_affinity(feat_teacher) - position_affinity(feat_student)
        intra = intra_diff.pow(2).mean(dim=(1, 2)).mean()
        return self.inter_weight * inter + self.intra_weight * intra
