"""Student-Friendly KD (Yuan, Lang & Quan, Knowledge-Based Systems 2024; ``yuan2024student``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._checks import check_same_shape
from kdsurvey.losses._kl import kl_of_logits
from kdsurvey.losses.base import DistillationLoss
from kdsurvey.losses.registry import register


@register("sfkd", paper="yuan2024student", evidence="abstract")
class SFKD(DistillationLoss):
    r"""Student-Friendly KD (Yuan, Lang & Quan, Knowledge-Based Systems 2024; ``yuan2024student``).

    The teacher's knowledge is simplified before it is taught: its logits are softened by the
    temperature, then a *learning simplifier* (self-attention, here across the samples of the
    batch) rewrites them; the simplifier is trained jointly with the student by the same KD loss:

    .. math:: X = z^t/T,\quad Y = \sigma\!\Big(\frac{(XW_Q)(XW_K)^\top}{\sqrt C}\Big)XW_V,\qquad
              \mathcal{L} = w\,T^2\,\frac1B\sum_b
              \mathrm{KL}\big(\sigma(Y_b)\,\|\,\sigma(z^s_b/T)\big)

    Args:
        temperature: ``T`` of the softening processing and of the student (4.0).
        num_classes: ``C``; when given, :math:`W_Q, W_K, W_V` are learnable ``C x C`` linear maps
            (no bias) initialised to the identity, so training starts from the parameter-free
            simplifier; ``None`` (default) uses that parameter-free core (identity projections, no
            parameters).
        loss_weight: ``w``.

    Notes:
        Shapes: ``(B, C)`` logits; scalar. Not zero when the student equals the teacher: the
        student matches the *simplified* teacher (``zero_at_match = False``). Invariant to the batch
        order (attention is permutation-equivariant).

        UNCERTAIN: no code was released and the paper's equations could not be read; the form of
        the simplifier (single-head self-attention over the batch on softened logits, no residual)
        and its initialisation are inferred from the abstract and may differ from the paper.
    """

    zero_at_match = False

    def __init__(
        self, temperature: float = 4.0, num_classes: int | None = None, loss_weight: float = 1.0
    ):
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.simplifier = None
        if num_classes is not None:
            self.simplifier = nn.ModuleDict(
                {k: nn.Linear(num_classes, num_classes, bias=False) for k in ("q", "k", "v")}
            )
            for layer in self.simplifier.values():
                nn.init.eye_(layer.weight)

    def simplify(self, x: Tensor) -> Tensor:
        """The learning simplifier applied to softened teacher logits ``x`` ``(B, C)``."""
        if self.simplifier is None:
            q = k = v = x
        else:
            q, k, v = (self.simplifier[name](x) for name in ("q", "k", "v"))
        attn = F.softmax(q @ k.transpose(0, 1) / x.shape[1] ** 0.5, dim=1)
        return attn @ v

    def forward(self, logits_student: Tensor, logits_teacher: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, C) student logits.
            logits_teacher: (B, C) teacher logits.

        Returns:
            The scalar loss.
        """
        check_same_shape(logits_student, logits_teacher, "logits")
        t = self.temperature
        y = self.simplify(logits_teacher.detach() / t)
        rows = kl_of_logits(logits_student / t, y)
        return self.loss_weight * t * t * rows.mean()
