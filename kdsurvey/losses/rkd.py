"""Relational Knowledge Distillation (Park et al., CVPR 2019; catalogue id ``park2019relational``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples, pairwise_distances
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset, embedding_example
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
        distance_weight: :math:`\lambda_D` (25, the authors' CIFAR script; 1 in their metric
            learning runs).
        angle_weight: :math:`\lambda_A` (50, the authors' CIFAR script; 2 in their metric
            learning runs).
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)`` (flattened when higher
        dimensional; widths may differ). Checked against lenscloth/RKD ``metric/loss.py``
        (``RkdDistance`` + ``RKdAngle``), identical to mdistiller and RepDistiller.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source="lenscloth/RKD@1927142 run_distill_classification.py:L41,L43 (--dist_ratio 25, "
            f"--angle_ratio 50); {REPDISTILLER} distiller_zoo/RKD.py:L10 with "
            f"{REPDISTILLER_CIFAR}:L17 (-a 0 -b 1); {MDISTILLER_CFG}:L74-79",
            note="the authors' script adds KD at weight 16 (--kd_ratio), a separate loss here",
        ),
        "cub200": Preset(
            source="lenscloth/RKD@0e0d3c2 examples/cub200.sh:L7-8 (--dist_ratio 1 --angle_ratio 2)",
            kwargs={"distance_weight": 1.0, "angle_weight": 2.0},
            task_weight=0.0,
            note="metric learning: the student's embedding learns from RKD alone (no label term)",
        ),
    }

    def __init__(
        self, distance_weight: float = 25.0, angle_weight: float = 50.0, loss_weight: float = 1.0
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
