"""Learning from multiple teachers (You et al., KDD 2017; catalogue id ``you2017learning``, "Learning from Multiple Teacher Networks")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_teachers, tensor_list
from kdsurvey.losses._kl import kl_to_probs
from kdsurvey.losses._relations import flatten_samples, squared_distances
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


def _average_teacher_probs(logits_teacher: Sequence[Tensor], weights: Tensor, t: float) -> Tensor:
    probs = torch.stack([F.softmax(z.detach() / t, dim=1) for z in logits_teacher])
    return (weights.to(probs).view(-1, 1, 1) * probs).sum(0)


def _teacher_weights(weights: Sequence[float] | None, k: int) -> Tensor:
    if weights is None:
        return torch.full((k,), 1.0 / k)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.numel() != k:
        raise ValueError(f"{w.numel()} teacher weights for {k} teachers")
    return w / w.sum()


@register("multi_teacher", paper="you2017learning", evidence="paper")
class MultiTeacher(DistillationLoss):
    r"""Learning from multiple teachers (You et al., KDD 2017; catalogue id ``you2017learning``,
    "Learning from Multiple Teacher Networks").

    Output layer: the student matches the average of the teachers' softened outputs,
    :math:`\bar p = \sum_k \omega_k\,\sigma(z^{t_k}/T)`. Intermediate layer: relative
    dissimilarity. For every triplet :math:`(a, i, j)` of distinct samples the teachers vote on
    which of :math:`i, j` is closer to the anchor,
    :math:`v_{aij}=\sum_k\omega_k\operatorname{sign}(d^{t_k}_{aj}-d^{t_k}_{ai})`, and the student's
    distances must respect the majority with a margin:

    .. math::
        \mathcal{L} = w\Big[\lambda_{kd}T^2\,\mathrm{KL}(\bar p\,\|\,\sigma(z^s/T))
        + \lambda_{rd}\operatorname{mean}_{v_{aij}\neq0}
        \big[\operatorname{sign}(v_{aij})(d^s_{ai}-d^s_{aj})+\delta\big]_+\Big]

    with :math:`d` the squared Euclidean distance between L2-normalised flattened features.

    Args:
        temperature: :math:`T` (4). The :math:`T^2` factor follows Hinton et al.
        margin: triplet margin :math:`\delta` (0.1, on normalised features).
        kd_weight: :math:`\lambda_{kd}` (1).
        rd_weight: :math:`\lambda_{rd}` (1).
        teacher_weights: :math:`\omega_k` (uniform when None), also used for the vote.
        loss_weight: ``w``.

    Notes:
        Shapes: ``logits_student`` ``(B, C)``, ``logits_teacher`` a list of ``(B, C)`` (one per
        teacher); optional ``feat_student`` ``(B, *)`` and ``feat_teacher`` a list of ``(B, *)``
        (widths may differ). No official code exists; implemented from the paper's description
        (averaged soft targets, triplets of relative dissimilarity, voting). Every triplet of the batch
        is used (the paper samples triplets); the feature normalisation, the default margin and the
        temperature are our choices, and ties in the vote are skipped. ``zero_at_match`` is False: the
        margin keeps the triplet term positive even for a student equal to a teacher.
    """

    zero_at_match = False

    def __init__(
        self,
        temperature: float = 4.0,
        margin: float = 0.1,
        kd_weight: float = 1.0,
        rd_weight: float = 1.0,
        teacher_weights: Sequence[float] | None = None,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.temperature, self.margin = temperature, margin
        self.kd_weight, self.rd_weight = kd_weight, rd_weight
        self.teacher_weights = teacher_weights
        self.loss_weight = loss_weight

    def relative_dissimilarity(self, feat_student: Tensor, feats_teacher: list[Tensor], w: Tensor):
        d_s = squared_distances(F.normalize(flatten_samples(feat_student), dim=1))
        n = d_s.shape[0]
        # votes[a, i, j] > 0: the (weighted) majority of teachers finds i closer to a than j
        votes = d_s.new_zeros(n, n, n)
        for wk, t in zip(w.tolist(), feats_teacher, strict=True):
            d_t = squared_distances(F.normalize(flatten_samples(t), dim=1))
            votes = votes + wk * torch.sign(d_t.unsqueeze(1) - d_t.unsqueeze(2))
        eye = torch.eye(n, dtype=torch.bool, device=d_s.device)
        distinct = ~(eye.unsqueeze(2) | eye.unsqueeze(1) | eye.unsqueeze(0))
        valid = distinct & (votes != 0)
        if not bool(valid.any()):
            return d_s.new_zeros(())
        hinge = F.relu(torch.sign(votes) * (d_s.unsqueeze(2) - d_s.unsqueeze(1)) + self.margin)
        return hinge[valid].mean()

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor | Sequence[Tensor],
        feat_student: Tensor | None = None,
        feat_teacher: Tensor | Sequence[Tensor] | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: list of (B, C) logits, one per teacher.
            feat_student: (B, D) student embeddings.
            feat_teacher: list of (B, D_k) teacher embeddings, one per teacher.

        Returns:
            The scalar loss.
        """
        teachers = tensor_list(logits_teacher)
        check_teachers(logits_student, teachers, "multi-teacher logits", dims=(0, 1))
        w = _teacher_weights(self.teacher_weights, len(teachers))
        t = self.temperature
        p_bar = _average_teacher_probs(teachers, w, t)
        loss = self.kd_weight * t * t * kl_to_probs(logits_student, p_bar, t).mean()
        if feat_student is not None and feat_teacher is not None:
            feats_t = [f.detach() for f in tensor_list(feat_teacher)]
            if len(feats_t) != len(teachers):
                raise ValueError(f"{len(feats_t)} teacher features for {len(teachers)} teachers")
            check_teachers(feat_student, feats_t, "multi-teacher feature")
            loss = loss + self.rd_weight * self.relative_dissimilarity(feat_student, feats_t, w)
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        n, c, d = (256, 100, 256) if large else (batch, 10, 16)

        def r(*s):
            return torch.randn(*s, generator=generator, dtype=dtype)

        return {
            "logits_student": r(n, c),
            "logits_teacher": [2 * r(n, c) for _ in range(3)],
            "feat_student": r(n, d),
            "feat_teacher": [r(n, d) for _ in range(3)],
        }
