"""GKD's generalized Jensen-Shannon divergence (Agarwal et al., ICLR 2024; ``agarwal2024policy``).

The authors released no code; TRL's ``GKDTrainer.generalized_jsd_loss`` is the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kdsurvey.losses._tokens import (
    RowPair,
    TokenLoss,
    log_mixture,
    position_weights,
)
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import register

TRL = "huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8"
TRL_REDUCTIONS = ("batchmean", "sum", "mean")


@register("gkd_jsd", paper="agarwal2024policy")
class GKDJSD(TokenLoss):
    r"""Generalized JSD of GKD, as TRL computes it (catalogue id ``agarwal2024policy``).

    .. math:: m = \beta\,p_t + (1-\beta)\,q_s,\qquad
              \mathrm{JSD}_\beta = \beta\,\mathrm{KL}(p_t\,\|\,m) + (1-\beta)\,\mathrm{KL}(q_s\,\|\,m)

    with ``p_t = softmax(z_t / T)``, ``q_s = softmax(z_s / T)`` at each position. At the ends the
    general formula tends to 0 (``m`` becomes the distribution it is compared with), so TRL, and
    this loss, treat ``beta = 0`` as the forward ``KL(p_t || q_s)`` and ``beta = 1`` as the reverse
    ``KL(q_s || p_t)``: the value jumps at both ends. DistiLLM's ``llm_js`` is the same function with
    ``lam = 1 - beta``.

    TRL's formula changed twice: trl#2202 (October 2024) reported that the mixture was taken of
    log-probabilities rather than probabilities; TRL then mixed probabilities but as
    ``beta q_s + (1 - beta) p_t``, ``beta`` on the student, against the paper's Eq. 1. trl PR
    #3043 (March 2025) put ``beta`` on the teacher, as here, and made ``beta`` 0 and 1 the plain
    KLs. Values from TRL versions before it differ from this loss.

    Args:
        beta: interpolation coefficient (TRL ``GKDConfig.beta``, default 0.5).
        temperature: softmax temperature ``T`` of both models (TRL's default 1; ``GKDConfig``'s
            ``temperature`` is the sampling temperature and is not passed to the loss). No ``T^2``.
        reduction: TRL's names. ``"batchmean"``: with ``target``, the sum over unmasked positions
            divided by their number (token mean); without, the sum divided by ``B``.
            ``"sum"``: the sum over unmasked positions. ``"mean"``: the mean over unmasked
            positions *and* vocabulary entries (TRL's ``jsd.mean()`` of the element-wise terms).
        loss_weight: multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        TRL computes in the logits' dtype (no upcast); here half precision is upcast to float32.
        TRL's ``num_items_in_batch`` (a global token count for gradient accumulation) is the
        training loop's. Products at tokens whose logits are ``-inf`` count as 0 (TRL would give
        NaN there). Official code: huggingface/trl ``trl/experimental/gkd/gkd_trainer.py``
        ``GKDTrainer.generalized_jsd_loss`` (commit f2cd577).
    """

    presets = {
        "trl": Preset(
            source=f"{TRL} trl/experimental/gkd/gkd_config.py (beta 0.5, lmbda 0.5)",
            task_weight=0.0,
            note=(
                "GKDTrainer.compute_loss returns the JSD alone; lmbda (the fraction of "
                "student-generated sequences) belongs to the training loop."
            ),
        )
    }

    def __init__(
        self,
        beta: float = 0.5,
        temperature: float = 1.0,
        reduction: str = "batchmean",
        loss_weight: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(loss_weight, chunk_size)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if reduction not in TRL_REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {', '.join(TRL_REDUCTIONS)}, got {reduction!r}"
            )
        self.beta = beta
        self.temperature = temperature
        self.reduction = reduction

    def weights(self, mask: Tensor, target: Tensor | None, dtype: torch.dtype) -> Tensor:
        if self.reduction == "sum":
            return mask.to(dtype)
        if self.reduction == "batchmean":
            return position_weights(
                mask, "token_mean" if target is not None else "batch_sum", dtype
            )
        return position_weights(mask, "token_mean", dtype)

    def forward(
        self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T, V) student logits.
            logits_teacher: (B, T, V) teacher logits.
            target: (B, T) int64 labels, -100 at ignored positions (``None``: all count, and
                ``"batchmean"`` divides by ``B``).

        Returns:
            The scalar loss.
        """
        value = self.evaluate(logits_student, logits_teacher, target)
        if self.reduction == "mean":
            return value / logits_student.shape[-1]
        return value

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        r = RowPair(s, t, self.temperature)
        if self.beta == 0:
            return r.forward_kl()
        if self.beta == 1:
            return r.reverse_kl()
        log_m = log_mixture(r.log_p, r.log_q, self.beta)
        teacher = (r.p * (r.log_p - log_m)).sum(-1)
        student = (r.q * (r.log_q - log_m)).sum(-1)
        return self.beta * teacher + (1 - self.beta) * student
