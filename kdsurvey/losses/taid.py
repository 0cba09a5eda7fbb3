"""TAID, temporally adaptive interpolated distillation (Shing et al., ICLR 2025; ``shing2025taid``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from kdsurvey.losses._tokens import RowPair, TokenLoss, compute_dtype
from kdsurvey.losses.base import Preset
from kdsurvey.losses.registry import register


@register("taid", paper="shing2025taid")
class TAID(TokenLoss):
    r"""TAID, temporally adaptive interpolated distillation (Shing et al., ICLR 2025; ``shing2025taid``).

    The student does not chase the teacher directly but an intermediate target that moves from
    itself to the teacher during training: the softmax of an interpolation, in logit space, of the
    student's own (detached) logits and the teacher's. At a given interpolation value :math:`t`:

    .. math:: p_t = \sigma\big((1-t)\,\mathrm{sg}(z^s) + t\,z^t\big),\qquad
              \mathcal{L} = \frac{1}{N}\sum_{(b,t):\,y\neq-100}\mathrm{KL}(p_t\,\|\,q)

    with :math:`q = \sigma(z^s)` and :math:`N` the number of labelled positions. :math:`t` grows
    during training (:class:`TAIDSchedule`): set ``loss.t`` before each step.

    Args:
        t: interpolation value :math:`t`, the teacher's weight in the target (0.4, the official
            ``--taid_t_start`` default; 1 is plain distillation from the teacher).
        cross_entropy: ``False`` (default) returns :math:`\mathrm{KL}(p_t\|q)`; ``True``
            returns what the official code returns, the cross-entropy :math:`-\sum p_t\log q`,
            larger by the entropy of :math:`p_t`, with the same gradient (the reference cases
            run with ``True``).
        loss_weight: multiplies the loss.
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Reduction: token mean over the labelled positions of the whole batch (labels ``-100``
        left out). No temperature and no :math:`T^2`. Positions are used as given: the official
        ``KDLoss`` shifts (``logits[..., :-1]`` against ``labels[..., 1:]``) before it calls the
        loss.

        Official code: ``TAID.compute_loss`` in ``src/distil_losses/taid.py`` of SakanaAI/TAID at
        ``a0628922c16169d1fca10ddf61849e0693289cf8`` (its ``forward_kl`` from ``fkl.py``, which is
        DistiLLM's cross-entropy form). Vocabulary entries where a logit is infinite (vocabulary
        masking) add nothing (the official code masks those where the student's is).

        Why the KL is the default: the official value, a cross-entropy, includes the entropy
        of a target that moves with the student (it is built from the student's own logits), so
        it can rise while training goes well; the KL falls to 0 when the student reaches its
        target. Both give the same gradient, so training is the same either way.

        Casts: the official target softmax and log-softmax run in float32 and ``t`` is a float32
        buffer; here float32 and float64 inputs keep their dtype, half precision is computed in
        float32, and ``t`` is a Python float.

        ``t`` weighs the teacher in an interpolation of logits, so it is not the ``beta`` of
        TRL's generalized JSD (a teacher weight in a mixture of probabilities): at ``t = 1`` with
        ``cross_entropy=False`` this is the forward KL, which TRL returns at ``beta = 0``.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "phi-3": Preset(
            source="SakanaAI/TAID src/arguments.py:58 (--taid_t_start 0.4), :45 (--distil_ratio "
            "1.0); scripts/phi-3/taid.sh",
            task_weight=0.0,
            note="t starts at 0.4 and follows TAIDSchedule (alpha 5e-4, beta 0.99, t_end 1.0); "
            "distil_ratio 1.0 trains on the distillation term alone (label weight 1 - 1.0 = 0).",
        ),
        "llama-2": Preset(
            source="SakanaAI/TAID scripts/stablelm/taid.sh (--taid_t_start 0.2; the file that "
            "trains from Llama-2-7b-chat) and scripts/llama-2/taid.sh (StableLM teacher, 0.2)",
            kwargs={"t": 0.2},
            task_weight=0.0,
            note="The llama-2 and stablelm script files hold each other's teacher; both start at "
            "t = 0.2.",
        ),
    }

    def __init__(
        self,
        t: float = 0.4,
        cross_entropy: bool = False,
        loss_weight: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__(loss_weight, chunk_size)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must lie in [0, 1], got {t}")
        self.t = t
        self.cross_entropy = cross_entropy

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        dtype = compute_dtype(s)
        target = (1.0 - self.t) * s.detach().to(dtype) + self.t * t.to(dtype)
        pair = RowPair(s, target)
        return pair.cross_entropy() if self.cross_entropy else pair.forward_kl()


@dataclass
class TAIDSchedule:
    """TAID's adaptive update of ``t``, once per optimisation step (the official ``update_t``).

    ``t`` follows the linear ramp from ``t_start`` to ``t_end`` over training, and moves ahead of
    it while the loss falls quickly: a momentum of the loss's relative decrease sets the step
    ``alpha * sigmoid(momentum) * (1 - t)``, and ``t`` is never lowered nor raised past
    ``t_end``. With ``disable_adaptive`` the ramp alone gives ``t``. Defaults are the official
    ``--taid_*`` defaults (SakanaAI/TAID ``src/arguments.py:58-76``)::

        schedule = TAIDSchedule()
        loss = TAID(t=schedule.t)
        for step in range(num_steps):
            value = loss(...)
            ...
            loss.t = schedule.update(value.item(), step, num_steps)

    The first call only records the loss (``t`` stays at ``t_start``), as in the official code.
    """

    t_start: float = 0.4
    t_end: float = 1.0
    alpha: float = 5e-4
    beta: float = 0.99
    disable_adaptive: bool = False
    t: float = field(init=False)
    prev_loss: float = field(init=False, default=math.inf)
    momentum: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not (0.0 <= self.t_start < 1.0 and 0.0 < self.t_end <= 1.0 and 0.0 <= self.alpha <= 1):
            raise ValueError(
                f"need 0 <= t_start < 1, 0 < t_end <= 1 and 0 <= alpha <= 1, got t_start="
                f"{self.t_start}, t_end={self.t_end}, alpha={self.alpha}"
            )
        self.t = self.t_start

    def update(self, loss: float, step: int, num_steps: int) -> float:
        """Record this step's loss value and return the new ``t``."""
        if math.isinf(self.prev_loss):
            self.prev_loss = loss
            return self.t
        relative_change = (self.prev_loss - loss) / (self.prev_loss + 1e-15)
        self.momentum = self.beta * self.momentum + (1 - self.beta) * relative_change
        target = self.t_start + (self.t_end - self.t_start) * step / num_steps
        if self.disable_adaptive:
            self.t = target
        else:
            delta = self.alpha * (1.0 / (1.0 + math.exp(-self.momentum))) * (1.0 - self.t)
            self.t = min(self.t_end, max(target, self.t + delta))
        self.prev_loss = loss
        return self.t
