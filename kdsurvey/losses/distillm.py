"""DistiLLM's token-level divergences (Ko et al., ICML 2024; catalogue id ``ko2024distillm``).

Seven losses after ``distillm/losses.py`` of jongwooko/distillm (commit 17c0f98, the file's last
change; read at d47e77f): forward, reverse, symmetric KL, Jensen-Shannon, total variation and the
paper's skew forward and skew reverse KL. Every one is a token mean over the positions whose label
is not ``-100``. The forward ones (``forward_kl``, the forward half of ``symmetric_kl``,
``skewed_forward_kl``) return the cross-entropy ``-sum p_t log(.)`` rather than the KL: the same
gradient, a value larger by the teacher's entropy (distillm issue #7). ``cross_entropy=True``
reproduces that; ``cross_entropy=False`` gives the true KL.
"""

from __future__ import annotations

from torch import Tensor

from kdsurvey.losses._tokens import RowPair, TokenLoss, TopKTeacher, log_mixture, topk_forward_rows
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import register

REPO = "jongwooko/distillm@17c0f98bc263b1861a02d5df578c84aea652ee65"
_FUNCTIONS = f"{REPO} distillm/losses.py"
_SKEW_SOURCE = f"{REPO} arguments.py:178 (--skew-alpha default 0.1)"
_SFKL_SOURCE = (
    f"{_SKEW_SOURCE}; scripts/gpt2/distillm/train_0.1B_1.5B.sh (--type adaptive-sfkl, "
    "--kd-ratio 1.0)"
)
_KD_RATIO_NOTE = (
    "DistiLLM trains on (1 - kd_ratio) * LM loss + kd_ratio * distillation loss; its scripts set "
    "kd_ratio 1.0 (scripts/gpt2/*/*.sh), so the label term has weight 0."
)


def forward_rows(s: Tensor, t: Tensor, cross_entropy: bool, temperature: float = 1.0) -> Tensor:
    """Per position ``-sum p_t log q_s`` (``cross_entropy``) or ``KL(p_t || q_s)``."""
    pair = RowPair(s, t, temperature)
    return pair.cross_entropy() if cross_entropy else pair.forward_kl()


def reverse_rows(s: Tensor, t: Tensor, temperature: float = 1.0) -> Tensor:
    """Per position ``KL(q_s || p_t) = sum q_s (log q_s - log p_t)``."""
    return RowPair(s, t, temperature).reverse_kl()


class _DistiLLMLoss(TokenLoss):
    presets = {
        "distillm": Preset(source=_FUNCTIONS, task_weight=0.0, note=_KD_RATIO_NOTE),
    }


class _ForwardKind(_DistiLLMLoss):
    """A DistiLLM loss with a forward (teacher-weighted) part: ``cross_entropy`` applies."""

    zero_at_match = False  # the cross-entropy form equals the teacher's entropy at a match

    def __init__(
        self, cross_entropy: bool = True, loss_weight: float = 1.0, chunk_size: int | None = None
    ):
        super().__init__(loss_weight, chunk_size)
        self.cross_entropy = cross_entropy


@register("llm_forward_kl", paper="ko2024distillm")
class LLMForwardKL(TopKTeacher, _ForwardKind):
    r"""Forward KL of DistiLLM's ``forward_kl`` (catalogue id ``ko2024distillm``).

    .. math:: \mathcal{L}_\mathrm{CE} = \frac{w}{|M|}\sum_{i\in M} -\sum_v p_{t,i}(v)\log q_{s,i}(v),
              \qquad \mathcal{L}_\mathrm{KL} = \frac{w}{|M|}\sum_{i\in M}
              \mathrm{KL}(p_{t,i}\,\|\,q_{s,i})

    ``M`` is the set of positions whose ``target`` is not ``-100``; ``p_t = softmax(z_t)``,
    ``q_s = softmax(z_s)`` over the vocabulary. ``cross_entropy=True`` (the default) returns
    DistiLLM's value, the cross-entropy ``L_CE``, which exceeds the KL ``L_KL`` (returned with
    ``cross_entropy=False``) by the teacher's entropy; the gradients are equal (distillm#7).

    Args:
        cross_entropy: ``True`` (DistiLLM, torchtune) returns the cross-entropy; ``False`` the KL.
        loss_weight: ``w``, multiplies the loss (DistiLLM's ``kd_ratio``).
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Reduction: mean over unmasked positions (0 when there are none; DistiLLM's ``0/0`` is
        NaN). No temperature, no ``T^2``. DistiLLM computes in float32 (``softmax(...,
        dtype=torch.float32)``, which also rounds float64 down); here float64 stays float64 and
        half precision is upcast to float32. Products at tokens whose logit is infinite count as 0,
        as DistiLLM's ``masked_fill``, with finite gradients (DistiLLM's are NaN there for every
        loss but ``forward_kl`` and ``tv_distance``, so its reference cases with ``-inf`` logits
        are stored for those two only). A top-k teacher (``teacher_topk_indices``) renormalises the
        teacher over its ``k`` tokens (:func:`kdsurvey.losses._tokens.topk_forward_rows`).
        Official code: jongwooko/distillm ``distillm/losses.py`` ``forward_kl`` (commit 17c0f98).
    """

    def rows(self, s, t):
        return forward_rows(s, t, self.cross_entropy)

    def topk_rows(self, s, t_values, t_indices):
        return topk_forward_rows(s, t_values, t_indices, 1.0, self.cross_entropy)


@register("llm_reverse_kl", paper="ko2024distillm")
class LLMReverseKL(_DistiLLMLoss):
    r"""Reverse KL of DistiLLM's ``reverse_kl`` (catalogue id ``ko2024distillm``).

    .. math:: \mathcal{L} = \frac{w}{|M|}\sum_{i\in M}\sum_v q_{s,i}(v)
              \big(\log q_{s,i}(v) - \log p_{t,i}(v)\big)

    A true KL (DistiLLM subtracts the student's entropy term), zero when the student matches.

    Args:
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Reduction, casts and infinite logits as :class:`LLMForwardKL`. Official code:
        jongwooko/distillm ``distillm/losses.py`` ``reverse_kl`` (commit 17c0f98).
    """

    def rows(self, s, t):
        return reverse_rows(s, t)


@register("llm_symmetric_kl", paper="ko2024distillm")
class LLMSymmetricKL(_ForwardKind):
    r"""DistiLLM's ``symmetric_kl`` (catalogue id ``ko2024distillm``): forward and reverse mixed.

    .. math:: \mathcal{L} = (1-\lambda)\,\mathcal{L}_\text{fwd} + \lambda\,\mathcal{L}_\text{rev}

    with the forward part in cross-entropy form unless ``cross_entropy=False``
    (:class:`LLMForwardKL`). torchtune's ``SymmetricKLLoss`` weighs the forward part instead:
    its ``sym_kd_ratio`` is ``1 - lam`` (the conventions table).

    Args:
        lam: ``lambda``, weight of the reverse KL (DistiLLM's default 0.9).
        cross_entropy: forward part as DistiLLM's cross-entropy (``True``) or the KL.
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        Reduction, casts and infinite logits as :class:`LLMForwardKL`. Official code:
        jongwooko/distillm ``distillm/losses.py`` ``symmetric_kl`` (commit 17c0f98); DistiLLM's
        ``finetune.py`` does not call it, so only the function default stands for a setting.
    """

    def __init__(
        self,
        lam: float = 0.9,
        cross_entropy: bool = True,
        loss_weight: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(cross_entropy, loss_weight, chunk_size)
        self.lam = lam

    def rows(self, s, t):
        fwd = forward_rows(s, t, self.cross_entropy)
        return (1 - self.lam) * fwd + self.lam * reverse_rows(s, t)


@register("llm_js", paper="ko2024distillm")
class LLMJS(_DistiLLMLoss):
    r"""DistiLLM's ``js_distance`` (catalogue id ``ko2024distillm``): a skewed Jensen-Shannon.

    .. math:: m = (1-\lambda)\,p_t + \lambda\,q_s,\qquad
              \mathcal{L} = \lambda\,\mathrm{KL}(q_s\,\|\,m) + (1-\lambda)\,\mathrm{KL}(p_t\,\|\,m)

    token mean over unmasked positions. ``lam = 0.5`` is the symmetric Jensen-Shannon divergence.
    TRL's generalized JSD (``gkd_jsd``) is the same function with ``beta = 1 - lam``.

    Args:
        lam: ``lambda``, the student's weight in the mixture and on ``KL(q_s || m)`` (0.9).
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        DistiLLM takes ``log`` of the mixed probabilities; here the mixture is formed in log space
        (``logaddexp``), equal where DistiLLM is finite and finite where its probabilities
        underflow. Reduction, casts and infinite logits as :class:`LLMForwardKL`. Official code:
        jongwooko/distillm ``distillm/losses.py`` ``js_distance`` (commit 17c0f98), called with its
        default ``lam`` by ``finetune.py`` (``--type jsd``).
    """

    def __init__(self, lam: float = 0.9, loss_weight: float = 1.0, chunk_size: int | None = None):
        super().__init__(loss_weight, chunk_size)
        self.lam = lam

    def rows(self, s, t):
        r = RowPair(s, t)
        log_m = log_mixture(r.log_p, r.log_q, 1 - self.lam)
        student = (r.q * (r.log_q - log_m)).sum(-1)
        teacher = (r.p * (r.log_p - log_m)).sum(-1)
        return self.lam * student + (1 - self.lam) * teacher


@register("llm_tvd", paper="ko2024distillm")
class LLMTVD(_DistiLLMLoss):
    r"""DistiLLM's ``tv_distance`` (catalogue id ``ko2024distillm``): total variation distance.

    .. math:: \mathcal{L} = \frac{w}{|M|}\sum_{i\in M}\tfrac12\sum_v |p_{t,i}(v) - q_{s,i}(v)|

    Args:
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        Reduction, casts and infinite logits as :class:`LLMForwardKL`. Official code:
        jongwooko/distillm ``distillm/losses.py`` ``tv_distance`` (commit 17c0f98).
    """

    def rows(self, s, t):
        r = RowPair(s, t)
        return 0.5 * (r.p - r.q).abs().sum(-1)


@register("distillm_skew_fkl", paper="ko2024distillm")
class DistiLLMSkewFKL(_ForwardKind):
    r"""DistiLLM's skew forward KL, ``skewed_forward_kl`` (catalogue id ``ko2024distillm``).

    .. math:: m = \lambda\,p_t + (1-\lambda)\,q_s,\qquad
              \mathcal{L} = \frac{w}{|M|}\sum_{i\in M} -\sum_v p_{t,i}(v)\log m_i(v)

    (paper, Eq. 3: ``KL(p || alpha p + (1 - alpha) q)``; the code returns the cross-entropy, which
    exceeds it by the teacher's entropy; ``cross_entropy=False`` gives the skew KL itself).

    Args:
        lam: ``lambda`` (the paper's ``alpha``), the teacher's weight in the mixture (0.1).
        cross_entropy: DistiLLM's cross-entropy (``True``) or the skew KL.
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        The adaptive off-policy sampling of DistiLLM (``adaptive-sfkl``) is the training loop's;
        this is the loss it minimises. Mixture in log space as :class:`LLMJS`; reduction, casts
        and infinite logits as :class:`LLMForwardKL`. Official code: jongwooko/distillm
        ``distillm/losses.py`` ``skewed_forward_kl`` (commit 17c0f98).
    """

    presets = {"distillm": Preset(source=_SFKL_SOURCE, task_weight=0.0, note=_KD_RATIO_NOTE)}

    def __init__(
        self,
        lam: float = 0.1,
        cross_entropy: bool = True,
        loss_weight: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(cross_entropy, loss_weight, chunk_size)
        self.lam = lam

    def rows(self, s, t):
        r = RowPair(s, t)
        log_m = log_mixture(r.log_p, r.log_q, self.lam)
        if self.cross_entropy:
            return -(r.p * log_m).sum(-1)
        return (r.p * (r.log_p - log_m)).sum(-1)


@register("distillm_skew_rkl", paper="ko2024distillm")
class DistiLLMSkewRKL(_DistiLLMLoss):
    r"""DistiLLM's skew reverse KL, ``skewed_reverse_kl`` (catalogue id ``ko2024distillm``).

    .. math:: m = (1-\lambda)\,p_t + \lambda\,q_s,\qquad
              \mathcal{L} = \frac{w}{|M|}\sum_{i\in M}\mathrm{KL}(q_{s,i}\,\|\,m_i)

    A true KL (zero when the student matches).

    Args:
        lam: ``lambda`` (the paper's ``alpha``), the student's weight in the mixture (0.1).
        loss_weight: ``w``, multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        Mixture in log space as :class:`LLMJS`; reduction, casts and infinite logits as
        :class:`LLMForwardKL`. Official code: jongwooko/distillm ``distillm/losses.py``
        ``skewed_reverse_kl`` (commit 17c0f98).
    """

    presets = {"distillm": Preset(source=_SKEW_SOURCE, task_weight=0.0, note=_KD_RATIO_NOTE)}

    def __init__(self, lam: float = 0.1, loss_weight: float = 1.0, chunk_size: int | None = None):
        super().__init__(loss_weight, chunk_size)
        self.lam = lam

    def rows(self, s, t):
        r = RowPair(s, t)
        log_m = log_mixture(r.log_p, r.log_q, 1 - self.lam)
        return (r.q * (r.log_q - log_m)).sum(-1)
