"""Locality-preserving feature embedding (Chen et al., IEEE TNNLS; catalogue id ``chen2021learning``, "Learning Student Networks via Feature Embedding")."""

from __future__ import annotations

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples, squared_distances
from kdsurvey.losses.base import DistillationLoss, embedding_example
from kdsurvey.losses.registry import register


@register("feature_embedding", paper="chen2021learning", evidence="paper")
class FeatureEmbedding(DistillationLoss):
    r"""Locality-preserving feature embedding (Chen et al., IEEE TNNLS; catalogue id
    ``chen2021learning``, "Learning Student Networks via Feature Embedding").

    Neighbourhoods are taken in the teacher's (high-dimensional) feature space and preserved by the
    student's low-dimensional features, as in locality preserving projections:

    .. math::
        \mathcal{L} = \frac{w}{2B}\sum_{i}\sum_{j\in\mathcal N_k(i)}\alpha_{ij}\,
        \|f^s_i - f^s_j\|_2^2,\qquad \alpha_{ij}=\exp\!\big(-\|f^t_i-f^t_j\|_2^2/\sigma^2\big)

    with :math:`\mathcal N_k(i)` the :math:`k` nearest neighbours of sample :math:`i` among the
    batch in the teacher's space.

    Args:
        num_neighbors: :math:`k` (5; capped at ``B - 1``).
        sigma: heat-kernel width :math:`\sigma`; None uses :math:`\sigma^2` = the mean squared
            teacher distance between distinct samples of the batch.
        loss_weight: ``w``.

    Notes:
        Shapes: ``feat_student`` ``(B, *)``, ``feat_teacher`` ``(B, *)`` (widths differ: no adapter is
        needed, the point of the paper). No official code was found; implemented from the paper's
        description. Inferred: the batch as the neighbourhood pool, the :math:`1/(2B)` normalisation
        and the default :math:`k, \sigma`. ``zero_at_match`` is False: the loss is a weighted spread
        of the student's own features, not a student-teacher discrepancy.
    """

    zero_at_match = False

    def __init__(
        self, num_neighbors: int = 5, sigma: float | None = None, loss_weight: float = 1.0
    ):
        super().__init__()
        self.num_neighbors, self.sigma = num_neighbors, sigma
        self.loss_weight = loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings.
            feat_teacher: (B, D) teacher embeddings.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "feature-embedding feature")
        s, t = flatten_samples(feat_student), flatten_samples(feat_teacher.detach())
        n = s.shape[0]
        k = min(self.num_neighbors, n - 1)
        if k < 1:
            return self.loss_weight * s.sum() * 0
        d_t = squared_distances(t)
        eye = torch.eye(n, dtype=torch.bool, device=s.device)
        sigma2 = d_t[~eye].mean() if self.sigma is None else torch.as_tensor(self.sigma**2).to(d_t)
        nn_idx = d_t.masked_fill(eye, float("inf")).topk(k, dim=1, largest=False).indices
        alpha = torch.exp(-d_t.gather(1, nn_idx) / sigma2.clamp(min=1e-12))
        d_s = (s.unsqueeze(1) - s[nn_idx]).pow(2).sum(-1)
        return self.loss_weight * (alpha * d_s).sum() / (2 * n)

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        return embedding_example(batch, dtype, generator, large, width=8, teacher_width=16)
