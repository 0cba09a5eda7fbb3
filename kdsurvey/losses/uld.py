"""Universal Logit Distillation (Boizard et al., TMLR 2025; ``boizard2025cross``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from kdsurvey.losses._tokens import (
    compute_dtype,
    position_mask,
    position_weights,
    token_example,
    token_loss,
)
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register


def check_two_vocabularies(
    logits_student: Tensor, logits_teacher: Tensor, target: Tensor, target_teacher: Tensor
) -> None:
    """One ``ValueError`` listing every problem: logits ``[B, T, V]`` with labels ``[B, T]`` for
    each model, the same ``B``; sequence lengths and vocabularies may differ."""
    problems = []
    for what, logits, labels, label_name in (
        ("logits_student", logits_student, target, "target"),
        ("logits_teacher", logits_teacher, target_teacher, "target_teacher"),
    ):
        if logits.dim() != 3 or labels.shape != logits.shape[:2] or labels.dtype != torch.int64:
            problems.append(
                f"{what} {tuple(logits.shape)} must be [B, T, V] and {label_name} "
                f"{tuple(labels.shape)} int64 [B, T] of the same B, T"
            )
    if logits_student.shape[:1] != logits_teacher.shape[:1]:
        problems.append(
            f"batch sizes differ: logits_student {tuple(logits_student.shape)} vs logits_teacher "
            f"{tuple(logits_teacher.shape)}"
        )
    if problems:
        raise ValueError("; ".join(problems))


def _first_answer_tokens(target: Tensor, counts: Tensor) -> Tensor:
    """Mask of each row's first ``counts[b]`` labelled positions."""
    labelled = position_mask(target, target.shape)
    return labelled & (labelled.cumsum(-1) <= counts[:, None])


@register("uld", paper="boizard2025cross")
class ULD(DistillationLoss):
    r"""Universal Logit Distillation (Boizard et al., TMLR 2025; ``boizard2025cross``).

    A distillation loss for a student and a teacher with different tokenizers: the two
    vocabularies need not match in size nor in order, because each token distribution is
    compared through its sorted probabilities. The :math:`k`-th answer token of the student is
    paired with the :math:`k`-th answer token of the teacher, each sorted probability vector is
    padded with zeros to the larger vocabulary, and the loss is their :math:`L_1` distance (the
    Wasserstein-1 distance under the paper's closed form):

    .. math:: \mathcal{L} = \frac{w}{B}\sum_b \frac{1}{n_b}\sum_{k=1}^{n_b}
              \sum_{i} \big| \mathrm{sort}\!\downarrow(\sigma(z^s_{b,k}/T_s))_i
              - \mathrm{sort}\!\downarrow(\sigma(z^t_{b,k}/T_t))_i \big|

    where :math:`z_{b,k}` are the logits of the :math:`k`-th labelled position of row :math:`b`
    and :math:`n_b` is the smaller of the two answer lengths (less the student's last token with
    ``skip_student_eos``).

    Args:
        student_temperature: :math:`T_s` (1.0).
        teacher_temperature: :math:`T_t` (1.0).
        skip_student_eos: leave out the student's last answer token (True in the authors'
            training, ``train/train_utils.py:52``).
        skip_teacher_eos: leave out the teacher's last answer token (False).
        loss_weight: :math:`w`, the official ``distillation_weight`` (``distil_factor``, 1.5).
        chunk_size: answer tokens per chunk for the memory-saving evaluation (``None``: all at
            once).

    Notes:
        Inputs: ``logits_student`` ``(B, T_s, V_s)`` and ``logits_teacher`` ``(B, T_t, V_t)``
        with ``V_s != V_t`` allowed. ``target`` gives the student's aligned labels (the label of
        ``logits_student[b, t]``) and ``target_teacher`` the teacher's; without
        ``target_teacher`` both sequences share ``target`` (then ``T_s = T_t``). Reduction: mean
        over each row's paired answer tokens, then mean over the B rows. No :math:`T^2`.

        Official code: ``DistillationLoss.forward`` in ``models/distillation_model.py`` of
        Nicolas-BZRD/llm-recipes at ``ab6e79800d28a1820348d72fc43ad964bb51ac29`` (the
        distillation term it returns, without its cross-entropy). It takes the unshifted labels
        and locates one answer per row as the span after the leading ``-100`` run, which equals
        the labelled positions here for single-span answers (one answer per sequence, as in its
        training data); with several labelled spans per row this pairs every labelled token in
        order while the official code reads one contiguous window. A row with no answer token
        counts 0 (the official mean over it is nan).

        Casts: none in the official code, except its loss accumulator ``torch.zeros(B)`` in the
        default dtype (float32), which rounds the value; here float32 and float64 keep their
        dtype and half precision is computed in float32.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "default": Preset(
            source="Nicolas-BZRD/llm-recipes configs/distillation.py:15-18 (cross_entropy_factor "
            "1, distil_factor 1.5, temperatures 1); train/train_utils.py:52 "
            "(skip_student_eos=True); README.md:44",
            task_weight=1.0,
        )
    }

    def __init__(
        self,
        student_temperature: float = 1.0,
        teacher_temperature: float = 1.0,
        skip_student_eos: bool = True,
        skip_teacher_eos: bool = False,
        loss_weight: float = 1.5,
        chunk_size: int | None = None,
    ):
        super().__init__()
        self.chunk_size = chunk_size
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.skip_student_eos = skip_student_eos
        self.skip_teacher_eos = skip_teacher_eos
        self.loss_weight = loss_weight

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        out = token_example(batch, dtype, generator, large)
        b, t, v = out["logits_teacher"].shape
        wider = v + max(v // 4, 6)  # another tokenizer's vocabulary
        out["logits_teacher"] = torch.randn(b, t, wider, generator=generator, dtype=dtype) * 2
        return out

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        target_teacher: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T_s, V_s) student logits.
            logits_teacher: (B, T_t, V_t) teacher logits (its own tokenizer).
            target: (B, T_s) int64 student labels; -100 marks positions left out.
            target_teacher: (B, T_t) int64 teacher labels; defaults to ``target``.

        Returns:
            The scalar loss.
        """
        target_teacher = target if target_teacher is None else target_teacher
        check_two_vocabularies(logits_student, logits_teacher, target, target_teacher)
        n_s = position_mask(target, target.shape).sum(-1) - int(self.skip_student_eos)
        n_t = position_mask(target_teacher, target_teacher.shape).sum(-1)
        counts = torch.minimum(n_s, n_t - int(self.skip_teacher_eos)).clamp_min(0)
        keep_s = _first_answer_tokens(target, counts)
        keep_t = _first_answer_tokens(target_teacher, counts)
        # Row-major selection keeps the k-th answer token of each row opposite its partner.
        z_s = logits_student[keep_s].unsqueeze(0)
        z_t = logits_teacher[keep_t].unsqueeze(0)
        # mean over each row's pairs, then over the B rows
        weights = position_weights(keep_s, "sequence_mean", compute_dtype(logits_student))
        weights = self.loss_weight * weights[keep_s].unsqueeze(0)
        return token_loss(self.rows, z_s, [z_t], weights, self.chunk_size)

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        """L1 distance of the sorted (and zero-padded) probabilities of paired rows."""
        p_s = torch.softmax(s.to(compute_dtype(s)) / self.student_temperature, dim=-1)
        p_t = torch.softmax(t.to(compute_dtype(t)) / self.teacher_temperature, dim=-1)
        p_s = p_s.sort(dim=-1, descending=True).values
        p_t = p_t.sort(dim=-1, descending=True).values
        width = max(p_s.shape[-1], p_t.shape[-1])
        p_s = F.pad(p_s, (0, width - p_s.shape[-1]))
        p_t = F.pad(p_t, (0, width - p_t.shape[-1]))
        return (p_s - p_t).abs().sum(-1)
