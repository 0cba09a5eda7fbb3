"""DistiLLM-2, contrastive distillation of LLMs (Ko et al., ICML 2025; ``ko2025distillm``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdsurvey.losses._tokens import (
    check_token_inputs,
    compute_dtype,
    log_mixture,
    log_probs,
    position_mask,
    position_weights,
    token_example,
    token_loss,
)
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def skew_forward_rows(s: Tensor, t: Tensor, alpha_1: float) -> Tensor:
    """Per position ``KL(p || alpha_1 p + (1 - alpha_1) q)`` (the chosen responses' term)."""
    log_q, log_p = log_probs(s), log_probs(t)
    return (log_p.exp() * (log_p - log_mixture(log_p, log_q, alpha_1))).sum(-1)


def skew_reverse_rows(s: Tensor, t: Tensor, alpha_2: float) -> Tensor:
    """Per position ``KL(q || (1 - alpha_2) p + alpha_2 sg(q))`` (the rejected responses' term)."""
    log_q, log_p = log_probs(s), log_probs(t)
    return (log_q.exp() * (log_q - log_mixture(log_p, log_q.detach(), 1.0 - alpha_2))).sum(-1)


@register("distillm2", paper="ko2025distillm")
class DistiLLM2(DistillationLoss):
    r"""DistiLLM-2, contrastive distillation of LLMs (Ko et al., ICML 2025; ``ko2025distillm``).

    Two batches of responses to the same prompts: *chosen* ones (written by the teacher) and
    *rejected* ones (written by the student; the official ``generate/reformat.py`` pairs them
    so). On the chosen responses the student is pulled up
    to the teacher with a skew forward KL; on the rejected ones it is pushed down to the teacher
    with a skew reverse KL whose mixture holds the student's own probabilities as constants:

    .. math:: \mathcal{L}_c = \mathrm{KL}\big(p\,\|\,\alpha_1 p + (1-\alpha_1) q\big),\qquad
              \mathcal{L}_r = \mathrm{KL}\big(q\,\|\,(1-\alpha_2) p + \alpha_2\,\mathrm{sg}(q)\big)

    .. math:: \mathcal{L} = \frac1B\sum_b\Big[(2-\beta)\,\overline{\mathcal{L}_c}_b
              + \beta\,\overline{\mathcal{L}_r}_b\Big]

    where :math:`p, q` are the teacher's and student's next-token distributions and the bar is
    the mean over the labelled tokens of sequence :math:`b` (chosen or rejected).

    Args:
        alpha_1: skew :math:`\alpha_1` of the forward KL on chosen responses (0.1), in (0, 1).
        alpha_2: skew :math:`\alpha_2` of the reverse KL on rejected responses (0.1), in (0, 1).
        beta: weight :math:`\beta` of the rejected term; the chosen term gets :math:`2-\beta`
            (1.0; the official optional ``gradual_beta`` raises it linearly from 1 to 1.5 over the
            first half of training).
        chunk_size: positions per chunk for the memory-saving evaluation (``None``: all at once).

    Notes:
        Inputs are the models' logits and the labels aligned with their *inputs*, as a causal LM
        returns them: like the official code the loss shifts them itself (``logits[:, :-1]``
        against ``target[:, 1:]``). Reduction: per-sequence token mean, then mean over the B
        sequences of each batch (chosen and rejected sequences are paired by index). No
        temperature and no :math:`T^2`. Both terms are true KL divergences.

        Official code: ``DistiLLMTrainer.get_batch_logps`` and ``kd_loss`` (``loss_type`` =
        ``distillm_v2``) in ``src/distillm_trainer.py`` of jongwooko/distillm-2 at
        ``fe4cf9bfbb4f83219dd1d69219800164b59685fa``. Its adaptive :math:`\alpha` (clipped from
        the running log-probability gaps) is off in the release (``update_alpha = False``,
        ``src/distillm_trainer.py:507``), so the fixed ``base_alpha`` values apply, as here.
        ``beta`` here is the local weight of ``kd_loss``, not the trainer's DPO ``beta``
        (0.1), which ``distillm_v2`` does not use.

        Casts: none in the official code (it runs in the model's dtype); here float32 and float64
        keep their dtype and half precision is computed in float32. A sequence without any
        labelled token counts 0 (the official code divides 0 by 0).
    """

    presets: ClassVar[dict[str, Preset]] = {
        "default": Preset(
            source="jongwooko/distillm-2 src/distillm_trainer.py:506-508 (base_alpha_1 = "
            "base_alpha_2 = 0.1, gradual_beta False so beta = 1.0); "
            "training_configs/qwen2.5-1.5b-distillm2.yaml (loss_type: distillm_v2)",
            task_weight=0.0,
            note="The distillm_v2 loss is the whole training objective (no label term).",
        )
    }

    def __init__(
        self,
        alpha_1: float = 0.1,
        alpha_2: float = 0.1,
        beta: float = 1.0,
        chunk_size: int | None = None,
    ):
        super().__init__()
        self.chunk_size = chunk_size
        for name, value in (("alpha_1", alpha_1), ("alpha_2", alpha_2)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        self.alpha_1, self.alpha_2, self.beta = alpha_1, alpha_2, beta

    # Student and teacher logits of both batches: the generic property tests cannot pair the
    # rejected inputs (their names do not end in ``_student``), so the minimum at a match is
    # tested in tests/test_llm_losses_b.py instead.
    zero_at_match: ClassVar[bool] = False

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        chosen = token_example(batch, dtype, generator, large)
        rejected = token_example(batch, dtype, generator, large)
        return {
            **chosen,
            "logits_student_rejected": rejected["logits_student"],
            "logits_teacher_rejected": rejected["logits_teacher"],
            "target_rejected": rejected["target"],
        }

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        logits_student_rejected: Tensor,
        logits_teacher_rejected: Tensor,
        target_rejected: Tensor,
    ) -> Tensor:
        """The loss of one batch of paired chosen and rejected responses.

        Args:
            logits_student: (B, T, V) student logits on the chosen responses.
            logits_teacher: (B, T, V) teacher logits on the chosen responses.
            target: (B, T) int64 input-aligned labels of the chosen responses; -100 marks
                positions left out (prompt, padding).
            logits_student_rejected: (B, T', V) student logits on the rejected responses.
            logits_teacher_rejected: (B, T', V) teacher logits on the rejected responses.
            target_rejected: (B, T') int64 input-aligned labels of the rejected responses.

        Returns:
            The scalar loss.
        """
        check_token_inputs(logits_student, logits_teacher, target)
        check_token_inputs(logits_student_rejected, logits_teacher_rejected, target_rejected)
        if logits_student_rejected.shape[0] != logits_student.shape[0]:
            raise ValueError(
                f"chosen and rejected batches differ: logits_student "
                f"{tuple(logits_student.shape)} vs logits_student_rejected "
                f"{tuple(logits_student_rejected.shape)}"
            )
        chosen = self._term(skew_forward_rows, self.alpha_1, logits_student, logits_teacher, target)
        rejected = self._term(
            skew_reverse_rows,
            self.alpha_2,
            logits_student_rejected,
            logits_teacher_rejected,
            target_rejected,
        )
        return (2.0 - self.beta) * chosen + self.beta * rejected

    def _term(self, rows, alpha: float, z_s: Tensor, z_t: Tensor, target: Tensor) -> Tensor:
        """Mean over sequences of each one's token mean, after the causal shift.

        The shift is in the weights: the logits at position i get the weight of the label at
        i + 1, and the last position none, so the logits are read in place (no shifted copy).
        """
        labels = target[:, 1:]
        mask = position_mask(labels, labels.shape)
        weights = torch.zeros(target.shape, dtype=compute_dtype(z_s), device=z_s.device)
        weights[:, :-1] = position_weights(mask, "sequence_mean", weights.dtype)
        return token_loss(lambda s, t: rows(s, t, alpha), z_s, [z_t], weights, self.chunk_size)
