"""ABKD, the alpha-beta divergence (Wang et al., ICML 2025; ``wang2025abkd``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdsurvey.losses._tokens import RowPair, TokenLoss
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import register


def ab_divergence(log_p: Tensor, log_q: Tensor, alpha: float, beta: float) -> Tensor:
    r"""Alpha-beta divergence :math:`D^{(\alpha,\beta)}(p\,\|\,q)` per entry (not summed).

    ``log_p`` (teacher) and ``log_q`` (student) are log-probabilities; powers are taken in log
    space (:math:`p^\alpha = e^{\alpha\log p}`). Each limit the formula has at a zero of
    :math:`\alpha`, :math:`\beta` or :math:`\alpha+\beta` is its own branch, as in the official
    code.
    """
    diff = log_q - log_p
    if alpha == 0 and beta == 0:
        return 0.5 * diff**2
    if alpha == 0:
        q_b, p_b = torch.exp(beta * log_q), torch.exp(beta * log_p)
        return q_b * diff + (p_b - q_b) / beta
    if beta == 0:
        p_a, q_a = torch.exp(alpha * log_p), torch.exp(alpha * log_q)
        return -p_a * diff + (q_a - p_a) / alpha
    if alpha + beta == 0:
        return diff + (torch.exp(-alpha * diff) - 1.0) / alpha
    s = alpha + beta
    cross = torch.exp(alpha * log_p + beta * log_q)
    return -(cross - alpha / s * torch.exp(s * log_p) - beta / s * torch.exp(s * log_q)) / (
        alpha * beta
    )


@register("abkd", paper="wang2025abkd")
class ABKD(TokenLoss):
    r"""ABKD, the alpha-beta divergence (Wang et al., ICML 2025; ``wang2025abkd``).

    One divergence family interpolates between forward KL (:math:`\alpha=1, \beta=0`) and reverse
    KL (:math:`\alpha=0, \beta=1`): :math:`\alpha` sets how strongly the student is pulled
    towards the teacher's mass ("hardness concentration"), :math:`\beta` how far the student's own
    confidence is used ("confidence concentration"). Per labelled position, with
    :math:`p = \sigma(z^t)`, :math:`q = \sigma(z^s)`:

    .. math:: D^{(\alpha,\beta)}(p\|q) = -\frac{1}{\alpha\beta}\sum_v \Big(p_v^\alpha q_v^\beta
              - \frac{\alpha}{\alpha+\beta}p_v^{\alpha+\beta}
              - \frac{\beta}{\alpha+\beta}q_v^{\alpha+\beta}\Big)

    .. math:: \mathcal{L} = \frac{1}{N}\sum_{(b,t):\,y_{bt}\neq-100} D^{(\alpha,\beta)}(p_{bt}\|q_{bt})

    and, where that formula is undefined, the official code's branches: :math:`\alpha=\beta=0`:
    :math:`\frac12\sum_v(\log q_v-\log p_v)^2`; :math:`\alpha=0`:
    :math:`\frac1\beta\sum_v\big(q_v^\beta\log\frac{q_v^\beta}{p_v^\beta} - q_v^\beta
    + p_v^\beta\big)`; :math:`\beta=0`: the same with :math:`p, \alpha` and :math:`q, \beta`
    swapped; :math:`\alpha+\beta=0`: :math:`\frac1\alpha\sum_v\big(\log\frac{q_v^\alpha}
    {p_v^\alpha}+\frac{p_v^\alpha}{q_v^\alpha} - 1\big)` (see the notes on their constants).

    Args:
        alpha: :math:`\alpha` (0.2 in the authors' GPT-2 scripts; 1 with ``beta=0`` is the
            forward KL).
        beta: :math:`\beta` (0.7 in the authors' GPT-2 scripts; 1 with ``alpha=0`` is the
            reverse KL).
        loss_weight: multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Reduction: token mean over the labelled positions of the whole batch (labels ``-100``
        left out; no shift). No temperature and no :math:`T^2`.

        Official code: ``ab_div`` in ``distillation_llm/distillm/losses.py`` of ghwang-s/abkd at
        ``df813185e69d21d1e99510272cd94e49be7250c0``; every branch (alpha and beta zero, alpha
        zero, beta zero, alpha + beta zero, the general formula) has a reference case. Its
        special branches are not the limits of the general formula: at ``alpha = 0`` it divides by
        :math:`\beta` where the limit (and the AB-divergence of Cichocki et al., 2011) divides by
        :math:`\beta^2`, and likewise :math:`\alpha` for :math:`\alpha^2` at ``beta = 0`` and at
        ``alpha + beta = 0``. The value thus jumps by that factor on those lines, except where it is
        1 (forward and reverse KL); ``alpha = beta = 0`` is continuous. The branches above are the
        official ones, so the loss reproduces that. The official
        code raises probabilities to powers; here the powers are taken from log-probabilities,
        which gives the same values. Vocabulary entries where a logit is infinite add nothing
        (the official code masks them in every branch but ``alpha = 0``, where an infinite
        teacher logit makes its loss infinite).

        Casts: the official softmaxes run in float32; here float32 and float64 inputs keep their
        dtype and half precision is computed in float32.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "gpt2": Preset(
            source="ghwang-s/abkd distillation_llm/scripts/gpt2/ab/train_0.3B_1.5B.sh:9-12 "
            "(alpha + beta = 0.9, alpha = 0.2), :65 (--kd-ratio 1.0)",
            task_weight=0.0,
            note="GPT-2 students of a GPT-2 1.5B teacher on Dolly; kd-ratio 1.0 trains on the "
            "divergence alone. The argparse defaults (arguments.py:200-201) are 0.5 and 0.5.",
        ),
        "openllama2": Preset(
            source="ghwang-s/abkd distillation_llm/scripts/openllama2/ab/"
            "train_3B_7B_teacher_lora.sh:9-12 (alpha + beta = 0.9, alpha = 0.1), :72",
            kwargs={"alpha": 0.1, "beta": 0.8},
            task_weight=0.0,
        ),
    }

    def __init__(
        self,
        alpha: float = 0.2,
        beta: float = 0.7,
        loss_weight: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(loss_weight, chunk_size)
        self.alpha, self.beta = alpha, beta

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        pair = RowPair(s, t)  # log-probabilities are 0 where a logit is infinite
        per_entry = ab_divergence(pair.log_p, pair.log_q, self.alpha, self.beta)
        return (per_entry if pair.inf is None else per_entry.masked_fill(pair.inf, 0.0)).sum(-1)
