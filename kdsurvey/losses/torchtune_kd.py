"""torchtune's knowledge-distillation losses, DistiLLM's functions as library classes.

Library variants of ``ko2024distillm`` (DistiLLM; Ko et al., ICML 2024), as ``cc_repdistiller`` sits
beside ``cc``: torchtune ``torchtune/modules/loss/kd_losses.py`` (pytorch/torchtune, commit 0a08c2f,
the file's last change) re-implements ``distillm/losses.py`` at its commit 17c0f98. The values
equal DistiLLM's except that a batch without any unmasked position gives 0 (DistiLLM: NaN; so do
torchtune's chunked reverse and symmetric classes, which divide by the zero count), and
``SymmetricKLLoss`` weighs the *forward* part: ``sym_kd_ratio = 1 - lam``.
"""

from __future__ import annotations

from kdsurvey.losses._tokens import TokenLoss, TopKTeacher, topk_forward_rows
from kdsurvey.losses.base import Preset
from kdsurvey.losses.distillm import forward_rows, reverse_rows
from kdsurvey.losses.registry import register

TORCHTUNE = "pytorch/torchtune@0a08c2f5f25de42404948a66ae7806f0f0a2c485"
_PRESETS = {
    "torchtune": Preset(
        source=(
            f"{TORCHTUNE} recipes/configs/llama3_2/8B_to_1B_KD_lora_single_device.yaml "
            "(kd_ratio: 0.5)"
        ),
        task_weight=0.5,
        note=(
            "The recipe trains on (1 - kd_ratio) * cross-entropy + kd_ratio * KD loss, with the "
            "chunked classes (ForwardKLWithChunkedOutputLoss); chunk_size plays their role here."
        ),
    )
}
_NOTES = """
    Notes:
        torchtune's classes take ``[B*T, V]`` logits and ``[B, T]`` labels, and their chunked
        versions (``*WithChunkedOutputLoss``) lists of ``[B, T/8, V]`` chunks; the value is the
        same. Reduction: token mean over positions whose label is not ``-100`` (0 when none).
        torchtune computes in float32 (``dtype=torch.float32``); here float64 stays float64.
        Official code: pytorch/torchtune ``torchtune/modules/loss/kd_losses.py`` (commit 0a08c2f).
"""


class _TorchtuneLoss(TokenLoss):
    presets = _PRESETS

    def __init__(self, loss_weight: float = 0.5, chunk_size: int | None = None):
        super().__init__(loss_weight, chunk_size)


@register("torchtune_fkl", paper="ko2024distillm")
class TorchtuneFKL(TopKTeacher, _TorchtuneLoss):
    r"""torchtune's ``ForwardKLLoss``, after DistiLLM (catalogue id ``ko2024distillm``).

    .. math:: \mathcal{L} = \frac{w}{|M|}\sum_{i\in M} -\sum_v p_{t,i}(v)\log q_{s,i}(v)

    The cross-entropy, as DistiLLM's ``forward_kl`` (larger than the KL by the teacher entropy,
    same gradient). A top-k teacher (``teacher_topk_indices``) renormalises the teacher over its
    ``k`` tokens (:func:`kdsurvey.losses._tokens.topk_forward_rows`).

    Args:
        loss_weight: ``w`` (the recipes' ``kd_ratio``, 0.5).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES
    zero_at_match = False  # the cross-entropy equals the teacher's entropy at a match

    def rows(self, s, t):
        return forward_rows(s, t, cross_entropy=True)

    def topk_rows(self, s, t_values, t_indices):
        return topk_forward_rows(s, t_values, t_indices, 1.0, cross_entropy=True)


@register("torchtune_rkl", paper="ko2024distillm")
class TorchtuneRKL(_TorchtuneLoss):
    r"""torchtune's ``ReverseKLLoss``, after DistiLLM (catalogue id ``ko2024distillm``).

    .. math:: \mathcal{L} = \frac{w}{|M|}\sum_{i\in M}\mathrm{KL}(q_{s,i}\,\|\,p_{t,i})

    Args:
        loss_weight: ``w`` (the recipes' ``kd_ratio``, 0.5).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES

    def rows(self, s, t):
        return reverse_rows(s, t)


@register("torchtune_symkl", paper="ko2024distillm")
class TorchtuneSymKL(_TorchtuneLoss):
    r"""torchtune's ``SymmetricKLLoss``, after DistiLLM (catalogue id ``ko2024distillm``).

    .. math:: \mathcal{L} = r\,\mathcal{L}_\text{fwd} + (1-r)\,\mathcal{L}_\text{rev}

    with ``r = sym_kd_ratio`` and the forward part in cross-entropy form (:class:`TorchtuneFKL`).
    DistiLLM's ``symmetric_kl`` weighs the reverse part: ``r = 1 - lam``.

    Args:
        sym_kd_ratio: ``r``, weight of the forward part, in ``[0, 1]`` (torchtune's default 0.5).
        loss_weight: ``w`` (the recipes' ``kd_ratio``, 0.5).
        chunk_size: positions per chunk (the memory-saving evaluation).
    """

    __doc__ += _NOTES
    zero_at_match = False

    def __init__(
        self, sym_kd_ratio: float = 0.5, loss_weight: float = 0.5, chunk_size: int | None = None
    ):
        super().__init__(loss_weight, chunk_size)
        if not 0.0 <= sym_kd_ratio <= 1.0:
            raise ValueError(f"sym_kd_ratio must be in the range [0, 1], got {sym_kd_ratio}")
        self.sym_kd_ratio = sym_kd_ratio

    def rows(self, s, t):
        r = self.sym_kd_ratio
        return r * forward_rows(s, t, cross_entropy=True) + (1 - r) * reverse_rows(s, t)
