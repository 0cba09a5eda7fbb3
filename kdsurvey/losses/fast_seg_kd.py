"""Zero- and first-order knowledge of *Improving Fast Segmentation With Teacher-student Learning* (Xie et al., BMVC 2018; catalogue id ``xie2018improving``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_dense, check_same_shape
from kdsurvey.losses._kl import kl_from_log_probs
from kdsurvey.losses.base import DistillationLoss, feature_example, score_maps_example
from kdsurvey.losses.registry import register


@register("fast_seg_kd", paper="xie2018improving", evidence="paper")
class FastSegKD(DistillationLoss):
    r"""Zero- and first-order knowledge of *Improving Fast Segmentation With Teacher-student
    Learning* (Xie et al., BMVC 2018; catalogue id ``xie2018improving``).

    Zero-order knowledge is the teacher's per-pixel class distribution :math:`p_i = \sigma(z_i/T)`;
    first-order knowledge is the relation between each pixel and its 8 neighbours, here the
    cosine similarity :math:`a_{ij} = \hat x_i^\top \hat x_j` of their feature vectors
    :math:`x` (the features when given, else the class probabilities). With :math:`\mathcal{P}`
    the (image, pixel, in-image 8-neighbour) pairs,

    .. math:: \mathcal{L} = w\Big(\lambda_0\,\frac{T^2}{BHW}\sum_{b,i}\mathrm{KL}(p^t_{b,i}\,\|\,
        p^s_{b,i}) + \lambda_1\,\frac{1}{|\mathcal{P}|}\sum_{(b,i,j)\in\mathcal{P}}
        (a^s_{b,ij} - a^t_{b,ij})^2\Big)

    The paper applies the same losses on unlabelled auxiliary images too (just feed them). No
    official code, so inferred from the paper's description: the cosine similarity as the local
    relation (the later SKD paper describes this method as pair-wise distillation restricted to
    the 8-neighbourhood), the :math:`T^2` factor and the mean reductions.

    Args:
        temperature: ``T`` of the softmax (1).
        zero_order_weight: :math:`\lambda_0`.
        first_order_weight: :math:`\lambda_1`.
        loss_weight: ``w``.

    Notes:
        Shapes: ``logits_student``, ``logits_teacher`` ``(B, K, H, W)``; optional ``feat_student``
        ``(B, Cs, h, w)``, ``feat_teacher`` ``(B, Ct, h, w)`` (widths may differ); returns a scalar.
        Each unordered neighbour pair appears twice in :math:`\mathcal{P}` with the same value, so the
        mean is taken over the four offsets right, down, down-right and down-left.
    """

    _OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))

    def __init__(
        self,
        temperature: float = 1.0,
        zero_order_weight: float = 1.0,
        first_order_weight: float = 1.0,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature = temperature
        self.zero_order_weight = zero_order_weight
        self.first_order_weight = first_order_weight
        self.loss_weight = loss_weight

    @classmethod
    def _neighbour_similarities(cls, x: Tensor) -> list[Tensor]:
        """Cosine similarity of each pixel with its in-image neighbour at each offset."""
        x = F.normalize(x, dim=1)
        h, w = x.shape[2:]
        out = []
        for dy, dx in cls._OFFSETS:
            here = x[:, :, : h - dy, max(0, -dx) : w - max(0, dx)]
            there = x[:, :, dy:, max(0, dx) : w - max(0, -dx)]
            out.append((here * there).sum(dim=1).flatten())
        return out

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C, H, W) student score maps.
            logits_teacher: (B, C, H, W) teacher score maps.
            feat_student: (B, C, H, W) student feature map.
            feat_teacher: (B, C, H, W) teacher feature map.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        log_p_s = F.log_softmax(logits_student / t, dim=1)
        log_p_t = F.log_softmax(logits_teacher.detach() / t, dim=1)
        zero = t * t * kl_from_log_probs(log_p_s, log_p_t, dim=1).mean()
        if feat_student is not None and feat_teacher is not None:
            check_dense(feat_student, feat_teacher, "features")
            x_s, x_t = feat_student, feat_teacher.detach()
        else:
            x_s, x_t = log_p_s.exp(), log_p_t.exp()
        a_s = torch.cat(self._neighbour_similarities(x_s))
        a_t = torch.cat(self._neighbour_similarities(x_t))
        first = (a_s - a_t).pow(2).mean() if a_s.numel() else zero.new_zeros(())
        return self.loss_weight * (self.zero_order_weight * zero + self.first_order_weight * first)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = score_maps_example(batch, dtype, generator, large)
        out.update(feature_example(batch, dtype, generator, large))
        return out
