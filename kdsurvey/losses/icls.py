"""Intra-Class Logit distribution Smoothing (Li, Cheng & Han, IEEE T-CSVT 2024; ``li2024boosting``): the objective used to train the *teacher*."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._checks import check_target
from kdsurvey.losses.base import DistillationLoss, logits_example
from kdsurvey.losses.registry import register


@register("icls", paper="li2024boosting", evidence="abstract")
class ICLS(DistillationLoss):
    r"""Intra-Class Logit distribution Smoothing (Li, Cheng & Han, IEEE T-CSVT 2024;
    ``li2024boosting``): the objective used to train the *teacher*.

    The paper observes that a distilled model keeps much more intra-class variance than a
    label-smoothed one and that this variance is what makes a good teacher, so the teacher is
    trained with a smoothing target that differs from sample to sample instead of label
    smoothing's class-constant uniform target. Here the smoothing distribution of each sample is
    its own temperature-softened prediction (detached):

    .. math:: q_b = (1-\epsilon)\,\mathrm{onehot}(y_b) + \epsilon\,
              \sigma\big(\mathrm{sg}(z_b)/T\big),\qquad
              \mathcal{L} = w\,\frac1B\sum_b -q_b^\top\log\sigma(z_b)

    Args:
        epsilon: smoothing mass (0.1, the usual label-smoothing value).
        temperature: ``T`` softening the per-sample smoothing distribution (4.0).
        loss_weight: ``w``.

    Notes:
        Inputs: ``logits_student`` = logits of the network being trained (the future teacher),
        ``(B, C)``; ``target`` ``(B,)``. There is no teacher input; scalar output. With
        ``epsilon = 0`` it is the plain cross-entropy.

        UNCERTAIN: no code was released and the paper's equations could not be read; this form is
        inferred from the abstract (teacher-side regularisation that preserves intra-class logit
        diversity, contrasted with label smoothing). The exact regulariser and its defaults in the
        paper may differ.
    """

    zero_at_match = False  # a cross-entropy, and there is no teacher input

    def __init__(self, epsilon: float = 0.1, temperature: float = 4.0, loss_weight: float = 1.0):
        super().__init__()
        self.epsilon = epsilon
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, logits_student: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            target: (B,) int64 class labels.

        Returns:
            The scalar loss.
        """
        check_target(logits_student, target)
        smooth = F.softmax(logits_student.detach() / self.temperature, dim=1)
        onehot = F.one_hot(target, logits_student.shape[1]).to(logits_student.dtype)
        q = (1 - self.epsilon) * onehot + self.epsilon * smooth
        ce = -(q * F.log_softmax(logits_student, dim=1)).sum(1)
        return self.loss_weight * ce.mean()

    @classmethod
    def example_inputs(cls, batch=4, dtype=None, generator=None, large=False):
        out = logits_example(batch, dtype, generator, large, with_target=True)
        del out["logits_teacher"]
        return out
