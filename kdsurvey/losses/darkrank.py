"""DarkRank, hard (ListMLE) transfer (Chen, Wang & Zhang, AAAI 2018; ``chen2018darkrank``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("darkrank", paper="chen2018darkrank")
class DarkRank(DistillationLoss):
    r"""DarkRank, hard (ListMLE) transfer (Chen, Wang & Zhang, AAAI 2018; catalogue id
    ``chen2018darkrank``, "DarkRank: Accelerating Deep Metric Learning via Cross Sample
    Similarities Transfer").

    For a query :math:`q` the other samples of the batch are ordered by the teacher, nearest first
    (:math:`\pi_1, \dots, \pi_{B-1}`); the student scores them by
    :math:`S(x) = -\big(\alpha\,\|x - q\|_2^2\big)^{\beta}` on its own embeddings, and the loss is the
    negative log-likelihood of the teacher's permutation under the Plackett-Luce model, averaged
    over the queries :math:`Q`:

    .. math::
        \mathcal{L} = \frac{w}{|Q|}\sum_{q\in Q}\sum_{i=1}^{B-1}\Big(
        \log\sum_{j\ge i} e^{S(x_{\pi_j})} - S(x_{\pi_i})\Big)

    As in the authors' code the queries are the first :math:`\lfloor B/2\rfloor` samples (their
    even sampler puts the positive pairs in the first half of the batch) and the query's own student
    embedding is a constant of each list (the code's hand-written gradient has no term for it).

    Args:
        scale: :math:`\alpha`, multiplies the student's squared distances (the code scales the
            embeddings by :math:`\sqrt\alpha`; 3.5).
        power: :math:`\beta`, the exponent applied to the scaled squared distance (2.0).
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        Shapes: ``feat_student`` ``(B, D_s)``, ``feat_teacher`` ``(B, D_t)`` (the authors feed
        L2-normalised embeddings; the loss does not normalise), ``B >= 2``; returns a scalar.
        Checked against the authors' MXNet custom operator (TuSimple/DarkRank
        ``PYOP/listmle_loss.py``, ``ListMLELoss.forward`` for the value and
        ``ListMLELoss.backward`` for the gradient, commit 581c912, the file's last change before
        HEAD 5e6a74f; both are plain NumPy, run without MXNet). No torchdistill implementation
        exists.

        The paper scores a document by a scaled negative power of its distance to the query; the
        code's form :math:`-(\alpha d^2)^{\beta}` is followed here (a scale :math:`\alpha^{\beta}`
        on the distance to the power :math:`2\beta`). The code adds ``1e-12`` to the probability
        inside the log (only in the value, not the gradient: 1.1e-7 on a value of 11.2 in the
        cases) and scales only the gradient by its loss weight; here the stable log-sum-exp form
        is used and ``w`` scales both. Defaults are those of the repository's README training
        command (``--score-power 2.0 --embedding-l2-norm 3.5``, given there for the soft ListNet
        variant, which shares the score function). The soft (ListNet) variant is not
        implemented.
    """

    zero_at_match = False  # the likelihood of the teacher's order is below one
    batch_invariant = False  # only the first half of the batch are queries

    def __init__(self, scale: float = 3.5, power: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.scale, self.power, self.loss_weight = scale, power, loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch; the first ``B // 2`` samples are the queries.

        Args:
            feat_student: (B, D_s) student embeddings.
            feat_teacher: (B, D_t) teacher embeddings, which give the ranking.

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "DarkRank embedding")
        b = feat_student.shape[0]
        if b < 2:
            raise ValueError(
                f"DarkRank needs at least two samples, got {tuple(feat_student.shape)}"
            )
        s = flatten_samples(feat_student) * math.sqrt(self.scale)
        t = flatten_samples(feat_teacher.detach())
        q = b // 2
        t_dist = (t.unsqueeze(0) - t[:q].unsqueeze(1)).pow(2).sum(-1)  # (Q, B)
        t_dist[torch.arange(q), torch.arange(q)] = -math.inf  # the query itself comes first
        order = t_dist.argsort(dim=1)[:, 1:]  # (Q, B-1), teacher's nearest first
        s_dist = (s.unsqueeze(0) - s[:q].detach().unsqueeze(1)).pow(2).sum(-1)
        scores = -s_dist.gather(1, order).pow(self.power)
        # log sum_{j >= i} exp(score_j): reversed cumulative log-sum-exp
        tail = scores.flip(1).logcumsumexp(1).flip(1)
        nll = (tail - scores).sum(1)
        return self.loss_weight * nll.mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, ds, dt = (256, 128, 256) if large else (batch, 16, 24)
        s = torch.randn(n, ds, generator=generator, dtype=dtype)
        t = torch.randn(n, dt, generator=generator, dtype=dtype)
        return {
            "feat_student": s / s.norm(dim=1, keepdim=True),
            "feat_teacher": t / t.norm(dim=1, keepdim=True),
        }
