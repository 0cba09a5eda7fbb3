"""Adaptive Kullback-Leibler divergence (Wu et al., COLING 2025; ``wu2025rethinking``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdsurvey.losses._tokens import RowPair, TokenLoss
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import register


def head_tail_weights(p_t: Tensor, p_s: Tensor, mu: float) -> tuple[Tensor, Tensor]:
    """AKL's per-token weights of the forward and reverse KL, from probabilities ``(N, V)``.

    The teacher's classes, sorted by probability, form the head until their cumulative mass
    exceeds ``mu`` (the first class always belongs to it); each weight is the share of the
    student's absolute error ``|p_t - p_s|`` that falls on its part. ``p_s`` must be detached.
    """
    sorted_t, order = p_t.sort(dim=-1, descending=True)
    errors = (sorted_t - p_s.gather(-1, order)).abs()
    tail = sorted_t.cumsum(-1) > mu
    tail[:, 0] = False
    g_head = errors.masked_fill(tail, 0.0).sum(-1)
    g_tail = errors.masked_fill(~tail, 0.0).sum(-1)
    total = g_head + g_tail
    # Identical distributions have no error: both KLs are 0 there, so any split gives the same
    # value; 1/2 each instead of the official 0/0 = nan.
    safe = torch.where(total > 0, total, torch.ones_like(total))
    half = torch.full_like(total, 0.5)
    return torch.where(total > 0, g_head / safe, half), torch.where(total > 0, g_tail / safe, half)


@register("akl", paper="wu2025rethinking")
class AKL(TokenLoss):
    r"""Adaptive Kullback-Leibler divergence (Wu et al., COLING 2025; ``wu2025rethinking``).

    Forward KL fits the head of the teacher's distribution first and reverse KL its tail, so AKL
    weighs the two per token by where the student's error lies. With the teacher's classes sorted
    by probability, the head :math:`H` is the smallest prefix whose cumulative probability reaches
    :math:`\mu` (the top class always in it) and the tail :math:`\bar H` the rest:

    .. math:: g_H = \sum_{v\in H} |p_v - \mathrm{sg}(q_v)|,\quad
              g_{\bar H} = \sum_{v\notin H} |p_v - \mathrm{sg}(q_v)|,

    .. math:: \mathcal{L} = \frac{1}{N}\sum_{(b,t):\,y_{bt}\neq-100}
              \frac{g_H\,\mathrm{KL}(p\,\|\,q) + g_{\bar H}\,\mathrm{KL}(q\,\|\,p)}{g_H + g_{\bar H}}

    with :math:`p = \sigma(z^t_{bt})`, :math:`q = \sigma(z^s_{bt})` and :math:`N` the number of
    labelled positions.

    Args:
        mu: head threshold :math:`\mu` on the teacher's cumulative probability (0.5, the
            official ``get_ratio`` default).
        loss_weight: multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Reduction: token mean over the labelled positions of the whole batch (labels ``-100`` are
        left out; positions are used as given, no shift). No temperature and no :math:`T^2`. Both
        terms are true KL divergences (the teacher's entropy is subtracted). The weights carry no
        gradient (the official code detaches the student probabilities there).

        Official code: ``AKL.py`` of wutaiqiang/LLM_KD_AKL at
        ``ff278be603df44b10afc07da3c7962ec8218aca7`` (``AKL``, ``get_ratio``, ``get_kl``). As
        published it does not run: it imports nothing, reads an undefined global
        ``no_model_batch`` for the labels and never returns ``distil_loss``. The reference cases
        ran it with the imports added, the labels passed as a third argument and the return added
        (ABKD's copy in ghwang-s/abkd ``distillation_llm/distillm/losses.py`` makes the same two
        last fixes). Vocabulary entries where a logit is infinite (vocabulary masking) add nothing
        to the KLs, and infinite logits count as 0 when the weights are computed, as there (the
        official code masks the KLs where the student's logit is infinite only, and returns nan
        where only the teacher's is).

        Casts: the official code computes in float32; here float32 and float64 inputs keep their
        dtype and half precision is computed in float32. Where student and teacher agree exactly
        the official weights are 0/0 (nan); here they are 1/2 (both KLs are 0 there).

        TAID (SakanaAI/TAID ``src/distil_losses/adaptive_kl.py``) ships an ``AdaptiveKL`` citing
        this paper that is a different function: it sorts the teacher's logits in ascending
        order and applies the head mask of that sorted order to the unsorted gaps, so the mask
        hits the wrong vocabulary entries; its weights are not detached; and its forward term is
        the cross-entropy :math:`-\sum p\log q`, not the KL. It is not this loss.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "default": Preset(
            source="wutaiqiang/LLM_KD_AKL AKL.py:1 (get_ratio mu=0.5); ghwang-s/abkd "
            "distillation_llm/scripts/gpt2/akl/train_0.1B_1.5B.sh:62 (--kd-ratio 1.0)",
            task_weight=0.0,
            note="The AKL repository gives only the function and says to plug it into MiniLLM's "
            "finetune.py; the ABKD authors' AKL baseline script trains on the loss alone "
            "(kd-ratio 1.0: label weight 1 - 1.0 = 0).",
        )
    }

    def __init__(self, mu: float = 0.5, loss_weight: float = 1.0, chunk_size: int | None = None):
        super().__init__(loss_weight, chunk_size)
        self.mu = mu

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        pair = RowPair(s, t)
        # The weights read the logits with infinite entries as 0, as get_ratio does.
        p_t = torch.softmax(pair.t.masked_fill(pair.t.isinf(), 0.0), dim=-1)
        p_s = torch.softmax(pair.s.detach().masked_fill(pair.s.isinf(), 0.0), dim=-1)
        w_head, w_tail = head_tail_weights(p_t, p_s, self.mu)
        return w_head * pair.forward_kl() + w_tail * pair.reverse_kl()
