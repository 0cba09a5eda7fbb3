"""DistillKit's logit losses (arcee-ai/DistillKit): KL, Jensen-Shannon and total variation.

Library variants, each beside the paper its formula comes from: the temperature-scaled KL of
``hinton2015distilling`` (Hinton et al., 2015), the symmetric Jensen-Shannon divergence (GKD's
``beta = 0.5``, ``agarwal2024policy``) and the total variation distance of f-DISTILL
(``wen2023f``). DistillKit sums the per-token values over unmasked positions, multiplies by
``T^2`` and divides by the number of unmasked tokens (``num_items_in_batch``): a token mean times
``T^2``, for all three, the total variation included.
"""

from __future__ import annotations

from kdsurvey.losses._tokens import RowPair, TokenLoss, TopKTeacher, log_mixture, topk_forward_rows
from kdsurvey.losses.base import Preset
from kdsurvey.losses.distillm import forward_rows
from kdsurvey.losses.registry import register

DISTILLKIT = "arcee-ai/DistillKit@a61c2e7d25c2e990d45832e12bd8542bdee9c810"
_PRESETS = {
    "distillkit": Preset(
        source=(
            f"{DISTILLKIT} distillkit/configuration.py:167-180 (loss_functions default: "
            "cross_entropy weight 0.5, kl weight 0.5 temperature 1.0)"
        ),
        task_weight=0.5,
        note="DistillKit's default configuration pairs its KL with the cross-entropy, 0.5 each.",
    )
}
_NOTES = """
    Notes:
        Reduction: ``T^2 *`` the sum over positions whose label is not ``-100``, divided by their
        number (DistillKit's ``mask`` and ``num_items_in_batch``; a global token count across
        gradient accumulation is the training loop's). DistillKit upcasts with ``.float()``
        (which rounds float64 down); here float64 stays float64. Official code:
        arcee-ai/DistillKit ``distillkit/lossfuncs/`` (commit a61c2e7).
"""


class _DistillKitLoss(TokenLoss):
    presets = _PRESETS

    def __init__(
        self, temperature: float = 1.0, loss_weight: float = 0.5, chunk_size: int | None = None
    ):
        super().__init__(loss_weight, chunk_size)
        self.temperature = temperature

    def scale(self) -> float:
        return self.loss_weight * self.temperature**2


@register("distillkit_kl", paper="hinton2015distilling")
class DistillKitKL(TopKTeacher, _DistillKitLoss):
    r"""DistillKit's ``KLDLoss`` (``kl``), Hinton's KD per token (``hinton2015distilling``).

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{|M|}\sum_{i\in M}
              \mathrm{KL}\big(\mathrm{softmax}(z_{t,i}/T)\,\|\,\mathrm{softmax}(z_{s,i}/T)\big)

    A true KL (``dense_kl_div``). With a top-k teacher (``teacher_topk_indices``, DistillKit's
    sparse signal with logits) the teacher is renormalised over its ``k`` tokens and the missing
    mass counts as zero (``sparse_kl_div``, ``MissingProbabilityHandling.ZERO``).

    Args:
        temperature: ``T`` (DistillKit's default configuration: 1.0).
        loss_weight: ``w``, the loss function's ``weight`` (0.5 by default).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES

    def rows(self, s, t):
        return forward_rows(s, t, cross_entropy=False, temperature=self.temperature)

    def topk_rows(self, s, t_values, t_indices):
        return topk_forward_rows(s, t_values, t_indices, self.temperature, cross_entropy=False)


@register("distillkit_jsd", paper="agarwal2024policy")
class DistillKitJSD(_DistillKitLoss):
    r"""DistillKit's ``JSDLoss`` (``jsd``), the symmetric JSD (``agarwal2024policy``, beta 0.5).

    .. math:: m = \tfrac12(p_t + q_s),\qquad \mathcal{L} = w\,T^2\,\frac{1}{|M|}\sum_{i\in M}
              \tfrac12\big(\mathrm{KL}(q_{s,i}\,\|\,m_i) + \mathrm{KL}(p_{t,i}\,\|\,m_i)\big)

    with ``p_t``, ``q_s`` the softmax of the logits divided by ``T``. Equal to ``gkd_jsd`` with
    ``beta = 0.5`` (and ``llm_js`` with ``lam = 0.5``) times ``T^2``.

    Args:
        temperature: ``T`` (1.0).
        loss_weight: ``w``, the loss function's ``weight`` (0.5).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES

    def rows(self, s, t):
        r = RowPair(s, t, self.temperature)
        log_m = log_mixture(r.log_p, r.log_q, 0.5)
        student = (r.q * (r.log_q - log_m)).sum(-1)
        return 0.5 * (student + (r.p * (r.log_p - log_m)).sum(-1))


@register("distillkit_tvd", paper="wen2023f")
class DistillKitTVD(_DistillKitLoss):
    r"""DistillKit's ``TVDLoss`` (``tvd``), total variation per token (``wen2023f``).

    .. math:: \mathcal{L} = w\,T^2\,\frac{1}{|M|}\sum_{i\in M}\tfrac12\sum_v
              \big|p_{t,i}(v) - q_{s,i}(v)\big|

    with ``p_t``, ``q_s`` the softmax of the logits divided by ``T``; DistillKit multiplies the
    total variation by ``T^2`` too, as its KL.

    Args:
        temperature: ``T`` (1.0).
        loss_weight: ``w``, the loss function's ``weight`` (0.5).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES

    def rows(self, s, t):
        r = RowPair(s, t, self.temperature)
        return 0.5 * (r.p - r.q).abs().sum(-1)
