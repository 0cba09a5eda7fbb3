"""*PRRD: Pixel-Region Relation Distillation For Efficient Semantic Segmentation* (Wang et al., ICASSP 2023; catalogue id ``wang2023prrd``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense
from kdsurvey.losses._kl import kl_from_log_probs
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("prrd", paper="wang2023prrd", evidence="paper")
class PRRD(DistillationLoss):
    r"""*PRRD: Pixel-Region Relation Distillation For Efficient Semantic Segmentation* (Wang et
    al., ICASSP 2023; catalogue id ``wang2023prrd``).

    Regions at several scales come from pyramid pooling (adaptive average pooling of the
    L2-normalised features into :math:`s\times s` bins, :math:`s \in` ``bins``); the
    pixel-region relation of pixel :math:`i` at scale :math:`s` is the softmax over that scale's
    regions of the cosine similarities, :math:`P^s_i = \sigma(\hat f_i^\top \hat r^s / \tau)`:

    .. math:: \mathcal{L} = \frac{w}{|S|}\sum_{s\in S}\frac{1}{BHW}\sum_{b,i}
        \mathrm{KL}\big(P^{s,t}_{b,i}\,\|\,P^{s,s}_{b,i}\big)

    The student learns how each of its pixels relates to the image's multi-scale context. No
    official code; the paper is a 4-page abstract-level description. Inferred: PSPNet bins
    (1, 2, 3, 6), cosine relations with a softmax over the regions of each scale (the
    pixel-region relation of OCRNet), KL matching at temperature 0.1 (CIRKD's contrast setting)
    and the mean reductions.

    Args:
        bins: pyramid pooling output sizes.
        temperature: :math:`\tau` of the relation softmax (0.1).
        loss_weight: ``w``.

    Notes:
        Shapes: ``feat_student`` ``(B, Cs, H, W)``, ``feat_teacher`` ``(B, Ct, H, W)`` (widths may
        differ); returns a scalar.
    """

    def __init__(
        self, bins: Sequence[int] = (1, 2, 3, 6), temperature: float = 0.1, loss_weight: float = 1.0
    ):
        super().__init__()
        self.bins = tuple(bins)
        self.temperature = temperature
        self.loss_weight = loss_weight

    def _relations(self, feat: Tensor) -> list[Tensor]:
        f = F.normalize(feat, dim=1)
        pixels = f.flatten(2).transpose(1, 2)  # (B, HW, C)
        out = []
        for s in self.bins:
            regions = F.normalize(F.adaptive_avg_pool2d(f, s).flatten(2), dim=1)  # (B, C, s*s)
            out.append(F.log_softmax(pixels @ regions / self.temperature, dim=2))
        return out

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_dense(feat_student, feat_teacher, "features")
        rel_s = self._relations(feat_student)
        rel_t = self._relations(feat_teacher.detach())
        kls = [kl_from_log_probs(s, t, dim=2).mean() for s, t in zip(rel_s, rel_t, strict=True)]
        return self.loss_weight * torch.stack(kls).mean()
