"""Hierarchical self-supervised augmented KD (HSAKD) of Yang et al., IJCAI 2021
(``yang2021hierarchical``)."""

from __future__ import annotations

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_length, check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses._views import rotations
from kdsurvey.losses.base import DistillationLoss, Preset, logits_example
from kdsurvey.losses.registry import register


def _kd(z_s: Tensor, z_t: Tensor, t: float) -> Tensor:
    """``T^2`` times the batch-mean ``KL(softmax(z_t/T) || softmax(z_s/T))``."""
    return t * t * kl_of_logits(z_s, z_t, t).mean()


@register("hsakd", paper="yang2021hierarchical")
class HSAKD(DistillationLoss):
    r"""Hierarchical self-supervised augmented KD (IJCAI 2021; ``yang2021hierarchical``).

    Every image is rotated by 0, 90, 180 and 270 degrees; auxiliary classifiers attached to
    several intermediate stages of both networks predict the *joint* label (class, rotation)
    over :math:`4C` outputs (the self-supervised augmented distribution). The teacher's
    auxiliary classifiers are trained first; the student then matches, at temperature
    :math:`T`, every auxiliary joint distribution of the teacher and the teacher's final class
    distribution on all rotated copies:

    .. math:: \mathcal{L} = w\,T^2\Big[\sum_{l=1}^{L}\frac{1}{N}\sum_n
              \mathrm{KL}\big(\sigma(q^{t}_{l,n}/T)\,\|\,\sigma(q^{s}_{l,n}/T)\big)
              + \frac{1}{N}\sum_n \mathrm{KL}\big(\sigma(z^t_n/T)\,\|\,\sigma(z^s_n/T)\big)\Big]

    with :math:`N = 4B` rotated samples, :math:`q_l` the :math:`(N, 4C)` logits of auxiliary
    branch :math:`l` and :math:`z` the :math:`(N, C)` final logits.

    Args:
        temperature: ``T`` (official ``--kd_T`` 3).
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Checked against winycg/HSAKD ``train_student_cifar.py`` (commit
        28c8dc2f5a1bedc5caf263884b4fe46e3f55c23b): its ``DistillKL`` summed over the auxiliary
        branches plus once on the final logits, exactly as ``train`` forms ``loss_div``;
        ``train_student_imagenet.py`` does the same. The rotation of the inputs, the label
        cross-entropy (on the unrotated rows only) and the teacher's first training stage are
        not part of this loss; any number of rows works, 4B being the paper's. In the harness the
        loss's ``views`` are the four rotations, so :class:`kdsurvey.distill.Distiller` feeds
        both networks the rotated batch and the label loss its unrotated rows; the auxiliary
        branches' logits come from ``providers``.
    """

    views = staticmethod(rotations)
    presets = {
        "cifar100": Preset(
            source="winycg/HSAKD train_student_cifar.py (commit ae234e4): --kd_T default 3; "
            "train() forms loss = loss_cls + loss_div, loss_cls on the unrotated rows",
        )
    }

    def __init__(self, temperature: float = 3.0, loss_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        out = logits_example(batch, dtype, generator, large)
        n, c = out["logits_student"].shape

        def aux(scale):
            return [
                scale * torch.randn(n, 4 * c, generator=generator, dtype=dtype) for _ in range(3)
            ]

        out["logits_aux_student"] = aux(1.0)
        out["logits_aux_teacher"] = aux(2.0)
        return out

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        logits_aux_student: list[Tensor],
        logits_aux_teacher: list[Tensor],
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (N, C) student logits of the rotated batch (N = 4B).
            logits_teacher: (N, C) teacher logits of the rotated batch.
            logits_aux_student: list of (N, 4C) student auxiliary-branch logits, one per stage.
            logits_aux_teacher: list of (N, 4C) teacher auxiliary-branch logits, same order.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        check_same_length(logits_aux_student, logits_aux_teacher)
        t = self.temperature
        total = logits_student.new_zeros(())
        for q_s, q_t in zip(logits_aux_student, logits_aux_teacher, strict=True):
            check_same_shape(q_s, q_t, "auxiliary logits")
            total = total + _kd(q_s, q_t.detach(), t)
        total = total + _kd(logits_student, logits_teacher.detach(), t)
        return self.loss_weight * total
