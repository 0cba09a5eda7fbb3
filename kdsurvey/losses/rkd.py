"""Relational Knowledge Distillation (Park et al., CVPR 2019; catalogue id ``park2019relational``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples, pairwise_distances
from kdsurvey.losses.base import DistillationLoss, embedding_example
from kdsurvey.losses.registry import register


@register("rkd", paper="park2019relational")
class RKD(DistillationLoss):
    r"""Relational Knowledge Distillation (Park et al., CVPR 2019; catalogue id
    ``park2019relational``).

    Distance potential :math:`\psi_D(t_i,t_j)=\|t_i-t_j\|_2/\mu` (:math:`\mu` the mean of the
    positive distances of the batch) and angle potential
    :math:`\psi_A(t_i,t_j,t_k)=\langle\frac{t_i-t_j}{\|t_i-t_j\|},\frac{t_k-t_j}{\|t_k-t_j\|}\rangle`;

    .. math::
        \mathcal{L} = w\big[\lambda_D\,\ell_\delta(\psi_D(s),\psi_D(t))
        + \lambda_A\,\ell_\delta(\psi_A(s),\psi_A(t))\big]

    with :math:`\ell_\delta` the Huber (smooth-L1, :math:`\beta=1`) loss averaged over all
    :math:`B^2` resp. :math:`B^3` entries (degenerate entries included, as in the code).

    Args:
        distance_weight: :math:`\lambda_D` (1; mdistiller's CIFAR setting uses 25).
        angle_weight: :math:`\lambda_A` (2; mdistiller's CIFAR setting uses 50).
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)`` (flattened when higher
        dimensional; widths may differ). Checked against lenscloth/RKD ``metric/loss.py``
        (``RkdDistance`` + ``RKdAngle``), identical to mdistiller and RepDistiller.
    """

    def __init__(
        self, distance_weight: float = 1.0, angle_weight: float = 2.0, loss_weight: float = 1.0
    ):
        super().__init__()
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight
        self.loss_weight = loss_weight

    @staticmethod
    def distance_potential(e: Tensor) -> Tensor:
        d = pairwise_distances(e)
        return d / d[d > 0].mean()

    @staticmethod
    def angle_potential(e: Tensor) -> Tensor:
        diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings.
            feat_teacher: (B, D) teacher embeddings.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "RKD embedding")
        s, t = flatten_samples(feat_student), flatten_samples(feat_teacher.detach())
        loss = feat_student.new_zeros(())
        if self.distance_weight:
            d = F.smooth_l1_loss(self.distance_potential(s), self.distance_potential(t))
            loss = loss + self.distance_weight * d
        if self.angle_weight:
            a = F.smooth_l1_loss(self.angle_potential(s), self.angle_potential(t))
            loss = loss + self.angle_weight * a
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return embedding_example(batch, dtype, generator, large)
