"""Probabilistic Knowledge Transfer (Passalis & Tefas, ECCV 2018; ``passalis2018learning``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_batch
from kdsurvey.losses._relations import flatten_samples
from kdsurvey.losses._sources import MDISTILLER_CFG, REPDISTILLER_CIFAR
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def _cosine_probabilities(x: Tensor, eps: float) -> Tensor:
    """Row-stochastic matrix of cosine similarities shifted to ``[0, 1]``: ``P[i, j] = p(j|i)``."""
    x = flatten_samples(x)
    x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)
    x = torch.nan_to_num(x, nan=0.0)
    k = (x @ x.t() + 1.0) / 2.0
    return k / k.sum(1, keepdim=True)


@register("pkt", paper="passalis2018learning")
class PKT(DistillationLoss):
    r"""Probabilistic Knowledge Transfer (Passalis & Tefas, ECCV 2018; catalogue id
    ``passalis2018learning``, "Learning Deep Representations with Probabilistic Knowledge
    Transfer").

    Each network's embeddings are L2-normalised (with :math:`\epsilon` added to the norm); the
    cosine-similarity kernel :math:`K(a, b) = \tfrac12(\cos(a, b) + 1)` turns a batch into the
    conditional probabilities :math:`p_{j|i} = K(x_i, x_j) / \sum_k K(x_i, x_k)` (the diagonal
    included), and the student minimises the divergence of its distribution from the teacher's,
    averaged over all :math:`B^2` entries:

    .. math::
        \mathcal{L} = \frac{w}{B^2}\sum_{i,j} p^t_{j|i}
        \log\frac{p^t_{j|i} + \epsilon}{p^s_{j|i} + \epsilon}

    Args:
        eps: :math:`\epsilon`, added to the norms and inside the logarithm (1e-7).
        loss_weight: ``w``, multiplies the whole loss (30000: RepDistiller ``-b 30000``, mdistiller
            ``FEAT_WEIGHT``).

    Notes:
        Shapes: ``feat_student`` ``(B, D_s)`` and ``feat_teacher`` ``(B, D_t)`` (any trailing
        shape is flattened; the widths may differ); returns a scalar. Checked against the
        authors' passalis/probabilistic_kt ``nn/pkt.py::cosine_similarity_loss`` (commit a58fd1b)
        and cross-checked against mdistiller ``pkt_loss``, torchdistill ``PKTLoss`` and
        RepDistiller ``distiller_zoo/PKT.py`` (``PKT.cosine_similarity_loss``), all identical.
        The paper writes the sum of the KL divergences; the code (and this loss) averages over
        the :math:`B^2` entries and keeps the :math:`j = i` terms; the paper's default kernel is
        this cosine one.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "cifar100": Preset(
            source=f"{REPDISTILLER_CIFAR}:L19 (-a 0 -b 30000); {MDISTILLER_CFG}:L114-117",
        ),
    }

    def __init__(self, eps: float = 1e-7, loss_weight: float = 30000.0):
        super().__init__()
        self.eps, self.loss_weight = eps, loss_weight

    def forward(self, feat_student: Tensor, feat_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D_s) student embeddings (trailing dimensions are flattened).
            feat_teacher: (B, D_t) teacher embeddings (trailing dimensions are flattened).

        Returns:
            The scalar loss.
        """
        check_same_batch(feat_student, feat_teacher, "PKT feature")
        p_s = _cosine_probabilities(feat_student, self.eps)
        p_t = _cosine_probabilities(feat_teacher.detach(), self.eps)
        loss = (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
        return self.loss_weight * loss

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, ds, dt = (256, 256, 512) if large else (batch, 16, 24)
        return {
            "feat_student": torch.randn(n, ds, generator=generator, dtype=dtype),
            "feat_teacher": torch.randn(n, dt, generator=generator, dtype=dtype),
        }
