"""MiniLLM's token-level reverse KL (Gu et al., ICLR 2024; catalogue id ``gu2024minillm``)."""

from __future__ import annotations

from kdsurvey.losses._tokens import TokenLoss
from kdsurvey.losses.base import Preset
from kdsurvey.losses.distillm import reverse_rows
from kdsurvey.losses.registry import register

LMOPS = "microsoft/LMOps@1518d70818d2ae2a0344247315e14714996d493f"


@register("minillm_rkl", paper="gu2024minillm")
class MiniLLMRKL(TokenLoss):
    r"""The single-step reverse-KL term of MiniLLM (catalogue id ``gu2024minillm``).

    .. math:: \mathcal{L} = \frac{w}{|M|}\sum_{i\in M}\sum_v q_{s,i}(v)
              \big(\log q_{s,i}(v) - \log p_{t,i}(v)\big),\qquad
              q_s = \mathrm{softmax}(z_s/T),\ p_t = \mathrm{softmax}(z_t/T)

    the exact per-token reverse KL that MiniLLM adds to its policy-gradient loss (the paper's
    single-step decomposition, ``_reg_loss``: cross-entropy of student against teacher minus the
    student's entropy, averaged over response tokens).

    MiniLLM's objective is the *sequence-level* reverse KL, optimised by policy gradient over
    responses the student samples (with teacher-mixed sampling and length normalisation): that is
    a training loop (sampling, rewards, clipping), not a loss of fixed tensors, and is not here.

    Args:
        temperature: ``T``; MiniLLM divides both models' logits by ``--temperature`` (default 1)
            before this term. No ``T^2``.
        loss_weight: ``w``, multiplies the loss (MiniLLM adds the term with weight 1).
        chunk_size: positions per chunk for the memory-saving evaluation.

    Notes:
        ``target`` stands for MiniLLM's response mask (``-100`` where the mask is 0). Reduction:
        token mean over those positions. MiniLLM computes in float32 (``dtype=torch.float32``);
        here float64 stays float64. Products at ``-inf`` logits (MiniLLM's ``inf_mask``) count as
        0. Official code: microsoft/LMOps ``minillm/minillm/losses.py`` ``Loss._reg_loss`` with
        ``get_x_entropy`` and ``get_entropy`` of ``minillm/minillm/utils.py`` (commit 1518d70).
    """

    presets = {
        "minillm": Preset(
            source=f"{LMOPS} minillm/arguments.py:183 (--temperature 1); minillm/minillm/losses.py:169-173",
            task_weight=0.0,
            note=(
                "Added with weight 1 to the policy-gradient loss; the language-modelling loss on "
                "pre-training data (lm_coef) belongs to the training loop, as the sampling does."
            ),
        )
    }

    def __init__(
        self, temperature: float = 1.0, loss_weight: float = 1.0, chunk_size: int | None = None
    ):
        super().__init__(loss_weight, chunk_size)
        self.temperature = temperature

    def rows(self, s, t):
        return reverse_rows(s, t, self.temperature)
