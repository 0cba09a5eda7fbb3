"""Prime-aware adaptive distillation with an L2 loss (PAD-L2) of Zhang et al., ECCV 2020
(``zhang2020prime``)."""

from __future__ import annotations

import torch
from torch import Tensor

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("pad_l2", paper="zhang2020prime")
class PADL2(DistillationLoss):
    r"""Prime-Aware Adaptive Distillation, L2 form (Zhang et al., ECCV 2020; ``zhang2020prime``).

    The student predicts, next to its embedding, a per-dimension log-variance
    :math:`s = \log\sigma^2` (an uncertainty branch); the feature-matching L2 loss of each
    sample and dimension is divided by that variance, with :math:`\log\sigma^2` as the penalty
    that stops the variance from growing without bound (heteroscedastic regression). Samples the
    student can match well ("prime samples") get a small variance, hence more weight:

    .. math:: \mathcal{L} = \frac{w}{BD}\sum_{b,d}\Big[
              \frac{(f^t_{b,d} - f^s_{b,d})^2}{\epsilon + e^{s_{b,d}}} + s_{b,d}\Big]

    (with ``reduction="sum"`` the batch is summed instead of averaged).

    Args:
        eps: :math:`\epsilon`, keeps the denominator away from zero.
        reduction: ``"mean"`` averages the per-sample losses over the batch, ``"sum"`` adds them.
        loss_weight: ``w``, multiplies the whole loss.

    Notes:
        The authors released no code. Checked against torchdistill
        (yoshitomo-matsubara/torchdistill) ``torchdistill/losses/mid_level.py::PADL2Loss.forward``
        (commit 3e4373c45214c5c56eebac481d5bfe8b8735aa05), a re-implementation whose comment says
        it follows code the authors provided: the loss is averaged over dimensions (the paper
        writes a sum) and :math:`\epsilon` is added to the variance. The variance branch itself
        (torchdistill's ``VarianceBranch4PAD``, a linear layer on the student embedding) belongs
        to the student model and is not part of this loss; the student embedding is already
        adapted to the teacher's width. The loss is not zero when the embeddings agree (the
        log-variance penalty remains).
    """

    zero_at_match = False

    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        n, d = (256, 512) if large else (batch, 16)

        def rand():
            return torch.randn(n, d, generator=generator, dtype=dtype)

        return {"feat_student": rand(), "feat_teacher": rand(), "log_variance": 0.5 * rand()}

    def forward(self, feat_student: Tensor, feat_teacher: Tensor, log_variance: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            feat_student: (B, D) student embeddings (trailing dimensions are flattened).
            feat_teacher: (B, D) teacher embeddings (trailing dimensions are flattened).
            log_variance: (B, D) the student's predicted log-variance, a student output that
                receives gradient.

        Returns:
            The scalar loss.
        """
        check_same_shape(feat_student, feat_teacher, "embeddings")
        f_s, f_t = feat_student.flatten(1), feat_teacher.detach().flatten(1)
        log_var = log_variance.reshape(f_s.shape)
        per_sample = ((f_t - f_s) ** 2 / (self.eps + torch.exp(log_var)) + log_var).mean(dim=1)
        reduced = per_sample.mean() if self.reduction == "mean" else per_sample.sum()
        return self.loss_weight * reduced
