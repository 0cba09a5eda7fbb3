"""Dual-Space Knowledge Distillation (Zhang et al., EMNLP 2024; ``zhang2024dual``)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdsurvey.losses._tokens import compute_dtype, position_mask, token_example
from kdsurvey.losses.base import DistillationLoss, Preset
from kdsurvey.losses.registry import register
from kdsurvey.losses.uld import check_two_vocabularies

OBJECTIVES = ("forward_kl", "reverse_kl")


def _kl_rows(log_a: Tensor, log_b: Tensor) -> Tensor:
    """``KL(a || b)`` per row from log-probabilities ``(N, V)``."""
    return (log_a.exp() * (log_a - log_b)).sum(-1)


@register("dskd", paper="zhang2024dual")
class DSKD(DistillationLoss):
    r"""Dual-Space Knowledge Distillation (Zhang et al., EMNLP 2024; ``zhang2024dual``).

    Ordinary KD compares two distributions computed by two different output heads from two
    different hidden spaces. DSKD projects each model's last hidden states into the other's
    space and reads them with the other's head, so each comparison is made within one space:

    .. math:: z^{t\to s} = P_{t\to s}(h^t)\,\mathrm{sg}(W_s)^\top,\qquad
              z^{s\to t} = P_{s\to t}(h^s)\,W_t^\top

    .. math:: \mathcal{L} = \frac{w}{N}\sum_{(b,t):\,y\neq-100}\Big[
              D\big(\sigma(\mathrm{sg}(z^{t\to s})/T)\,\|\,\sigma(z^s/T)\big)
              + \mathrm{CE}(z^{t\to s}, y)
              + \mathrm{KL}\big(\sigma(z^t/T)\,\|\,\sigma(z^{s\to t}/T)\big)\Big]

    :math:`D` is ``kd_objective`` (forward or reverse KL), the cross-entropy term trains the
    teacher-to-student projector to keep the teacher's predictions, and :math:`N` is the number
    of labelled positions.

    Args:
        temperature: :math:`T`, the official ``kd_temperature`` (2.0 in the authors' scripts).
        kd_objective: ``"forward_kl"`` (authors' scripts) or ``"reverse_kl"``.
        loss_weight: :math:`w`, the official ``kd_rate`` (0.5; the label cross-entropy gets
            1 - 0.5).
        student_channels: the student's hidden width :math:`D_s`; with ``teacher_channels`` the
            loss owns the two learned projectors (``nn.Linear``, as the official
            ``"t-s"``/``"s-t"`` projector configuration builds them), trained with the student.
        teacher_channels: the teacher's hidden width :math:`D_t`.

    Notes:
        Inputs: ``feat_student``/``feat_teacher`` are the last hidden states (what the output
        heads read, after the final norm) and ``lm_head_student``/``lm_head_teacher`` the output
        embedding matrices ``(V, D)``, heads without bias. Without channel sizes no projector is
        applied: ``feat_student`` must then be the already projected student state (width
        :math:`D_t`) and ``feat_teacher`` the already projected teacher state (width
        :math:`D_s`), which is how the reference cases feed them. Student and teacher share one
        tokenizer and one ``target`` (the setting of this criterion; the authors' cross-tokenizer
        variant, DSKD with cross-model attention, is not implemented here).

        Reduction: sum over labelled tokens divided by their number (the official step divides
        the summed loss by the batch's labelled tokens). No :math:`T^2`. Gradients: the student
        head enters detached and the teacher's logits, states and head are constants; the
        cross-entropy term reaches only the teacher-to-student projector.

        Official code: ``DualSpaceKD.compute_dual_space_kd_loss`` in
        ``code/criterions/dual_space_kd.py`` of songmzhang/DSKD at
        ``077337ac989045ccf11a6dd927418e3cf4f40971``, with its KLs from
        ``various_divergence.py``. Of the official ``kd_objective`` choices only forward and
        reverse KL are implemented. Casts: the official softmaxes run in float32; here float32
        and float64 keep their dtype and half precision is computed in float32.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "default": Preset(
            source="songmzhang/DSKD scripts/gpt2/dskd_gpt2_base.sh:35-36,45 (KD_RATE 0.5, "
            "KD_TEMP 2.0, KD_OBJ forward_kl); scripts/tinyllama/dskd_tinyllama.sh:36-37,49",
            task_weight=0.5,
            note="loss = (1 - kd_rate) * label cross-entropy + kd_rate * this; the projectors "
            "train with their own learning rate (--projector-lr 0.001).",
        )
    }
    # The cross-entropy term of the projected teacher is not zero when the student matches.
    zero_at_match: ClassVar[bool] = False

    def __init__(
        self,
        temperature: float = 2.0,
        kd_objective: str = "forward_kl",
        loss_weight: float = 0.5,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
    ):
        super().__init__()
        if kd_objective not in OBJECTIVES:
            raise ValueError(
                f"kd_objective must be one of {', '.join(OBJECTIVES)}, got {kd_objective!r}"
            )
        if (student_channels is None) != (teacher_channels is None):
            raise ValueError("give both student_channels and teacher_channels, or neither")
        self.temperature = temperature
        self.kd_objective = kd_objective
        self.loss_weight = loss_weight
        learned = student_channels is not None
        self.t2s = nn.Linear(teacher_channels, student_channels) if learned else nn.Identity()
        self.s2t = nn.Linear(student_channels, teacher_channels) if learned else nn.Identity()

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        tokens = token_example(batch, dtype, generator, large)
        b, t, v = tokens["logits_student"].shape
        d = 64 if large else 5

        def rand(*shape):
            return torch.randn(*shape, generator=generator, dtype=dtype)

        return {
            **tokens,
            "feat_student": rand(b, t, d),
            "feat_teacher": rand(b, t, d),
            "lm_head_student": rand(v, d),
            "lm_head_teacher": rand(v, d),
        }

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        feat_student: Tensor,
        feat_teacher: Tensor,
        lm_head_student: Tensor,
        lm_head_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T, V_s) student logits.
            logits_teacher: (B, T, V_t) teacher logits, at the same positions.
            target: (B, T) int64 labels; -100 marks positions left out.
            feat_student: (B, T, D_s) student last hidden states (D_t when already projected).
            feat_teacher: (B, T, D_t) teacher last hidden states (D_s when already projected).
            lm_head_student: (V_s, D_s) student output embedding.
            lm_head_teacher: (V_t, D_t) teacher output embedding.

        Returns:
            The scalar loss.
        """
        check_two_vocabularies(logits_student, logits_teacher, target, target)
        for name, feat in (("feat_student", feat_student), ("feat_teacher", feat_teacher)):
            if feat.dim() != 3 or feat.shape[:2] != logits_student.shape[:2]:
                raise ValueError(
                    f"{name} {tuple(feat.shape)} must be (B, T, D) with (B, T) of "
                    f"logits_student {tuple(logits_student.shape)}"
                )
        mask = position_mask(target, target.shape)
        dtype = compute_dtype(logits_student)
        h_s = self.s2t(feat_student[mask].to(dtype))
        h_t = self.t2s(feat_teacher.detach()[mask].to(dtype))
        for name, head, h, vocab in (
            ("lm_head_student", lm_head_student, h_t, logits_student.shape[-1]),
            ("lm_head_teacher", lm_head_teacher, h_s, logits_teacher.shape[-1]),
        ):
            if head.shape != (vocab, h.shape[-1]):
                raise ValueError(
                    f"{name} {tuple(head.shape)} must be (V, D) = ({vocab}, {h.shape[-1]}): the "
                    "vocabulary of its logits and the width of the (projected) states it reads"
                )
        t2s = h_t @ lm_head_student.detach().to(dtype).t()
        s2t = h_s @ lm_head_teacher.detach().to(dtype).t()
        temp = self.temperature
        log_q = F.log_softmax(logits_student[mask].to(dtype) / temp, dim=-1)
        log_t2s = F.log_softmax(t2s.detach() / temp, dim=-1)
        if self.kd_objective == "forward_kl":
            t2s_kd = _kl_rows(log_t2s, log_q)
        else:
            t2s_kd = _kl_rows(log_q, log_t2s)
        t2s_ce = F.cross_entropy(t2s, target[mask], reduction="none")
        log_p = F.log_softmax(logits_teacher.detach()[mask].to(dtype) / temp, dim=-1)
        s2t_kd = _kl_rows(log_p, F.log_softmax(s2t / temp, dim=-1))
        total = (t2s_kd + t2s_ce + s2t_kd).sum() / max(int(mask.sum()), 1)
        return self.loss_weight * total
