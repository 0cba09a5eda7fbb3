"""Dual-Space Knowledge Distillation (Zhang et al., EMNLP 2024; ``zhang2024dual``)."""

from __future__ import annotations

import math
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


def check_projectors(s2t: nn.Module, t2s: nn.Module, feat_student: Tensor, feat_teacher: Tensor):
    """The hidden widths fit the loss's projectors (``student_channels``/``teacher_channels``)."""
    if isinstance(s2t, nn.Linear):
        want, got = (
            (s2t.in_features, t2s.in_features),
            (feat_student.shape[-1], feat_teacher.shape[-1]),
        )
        if want != got:
            raise ValueError(
                f"feat_student {tuple(feat_student.shape)} and feat_teacher "
                f"{tuple(feat_teacher.shape)} must have the widths (student_channels, "
                f"teacher_channels) = {want} of the projectors"
            )


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
        variant, DSKD with cross-model attention, is :class:`DSKDCMA`).

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
        check_projectors(self.s2t, self.t2s, feat_student, feat_teacher)
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


def _check_width(name: str, x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} {tuple(x.shape)} must be {shape}: {what}")


@register("dskd_cma", paper="zhang2024dual")
class DSKDCMA(DistillationLoss):
    r"""Dual-Space KD with cross-model attention (Zhang et al., EMNLP 2024; ``zhang2024dual``).

    DSKD for a student and a teacher with different tokenizers: their tokens do not line up, so
    each student position attends over the teacher's positions (and back) before the two spaces
    are compared. Queries are the student's embeddings of its input and target tokens, keys the
    teacher's (scaled by their standard deviation); the attention carries the teacher's states
    into the student's space and the student's into the teacher's:

    .. math:: A = \mathrm{softmax}\Big(rac{P_q([e^s_{in}; e^s_{y}])\,[\hat e^t_{in};
              \hat e^t_{y}]^	op}{\sqrt{2D_t}}\Big),\quad
              h^{t	o s} = A\,P_{t	o s}(\hat h^t + \hat e^t_y),\quad
              h^{s	o t} = A^	op_{	ext{softmax over student}}\,P_{s	o t}(h^s)

    (:math:`\hat x = x / \mathrm{std}(x)`, attention only between labelled positions), then, with
    :math:`z^{t	o s} = h^{t	o s}\,\mathrm{sg}(W_s)^	op` and
    :math:`z^{s	o t} = h^{s	o t}\,\mathrm{sg}(W_t)^	op`:

    .. math:: \mathcal{L} = rac{w}{N_s}\Big[\sum_{i}\mathrm{CE}(z^{t	o s}_i, y_i)
              + \sum_{i:\,rg\max z^{t	o s}_i = y_i} Dig(\sigma(\mathrm{sg}(z^{t	o s}_i)
              /(T\,T_t))\,\|\,\sigma(z^s_i/T)ig)
              + \sum_{j}\mathrm{KL}ig(\sigma(z^t_j/T)\,\|\,\sigma(z^{s	o t}_j/T)ig)\Big]

    over the student's labelled positions :math:`i` (:math:`N_s` of them) and the teacher's
    :math:`j`. The student-space KD counts only the positions where the projected teacher
    predicts the label.

    Args:
        temperature: :math:`T`, the official ``kd_temperature`` (2.0 in the authors' scripts).
        teacher_temperature: :math:`T_t`, divides the projected teacher's logits once more in the
            student-space KD (official ``--teacher-temperature``, 1.0).
        kd_objective: :math:`D`, ``"forward_kl"`` (authors' scripts) or ``"reverse_kl"``.
        loss_weight: :math:`w`, the official ``kd_rate`` (0.5; the label cross-entropy gets
            1 - 0.5).
        student_channels: the student's hidden width :math:`D_s`; with ``teacher_channels`` the
            loss owns the three learned projectors (query ``2D_s -> 2D_t``, ``s2t`` and ``t2s``,
            ``nn.Linear`` as the official ``"2s-2t"``, ``"s-t"``, ``"t-s"`` configuration).
        teacher_channels: the teacher's hidden width :math:`D_t`.

    Notes:
        Inputs: each model's logits, labels (aligned with its logits, ``-100`` left out) and
        input ids on its own tokenization; its last hidden states (what its output head reads);
        its input embedding matrix (``embed_*``, ``(V, D)``) and output embedding matrix
        (``lm_head_*``, ``(V, D)``, heads without bias). As in the official code the embeddings
        are read at the input ids and labels of labelled positions only (others read token 0),
        and the standard deviations are taken over whole tensors, padding included. Without
        channel sizes no projector is applied (identity), which needs :math:`D_s = D_t`: the
        reference cases run so.

        Reduction: the three sums divided by the student's number of labelled tokens (the
        official step divides by the batch's labelled tokens). No :math:`T^2`. Gradients reach
        the student's logits and hidden states and the projectors; embeddings, heads and all
        teacher inputs are constants.

        Official code: ``DualSpaceKDWithCMA.compute_dual_space_kd_loss_with_cma`` in
        ``code/criterions/dual_space_kd_with_cross_model_attention.py`` of songmzhang/DSKD at
        ``077337ac989045ccf11a6dd927418e3cf4f40971``. Casts: the official code casts the
        attention operands to float32; here float32 and float64 keep their dtype and half
        precision is computed in float32.
    """

    presets: ClassVar[dict[str, Preset]] = {
        "default": Preset(
            source="songmzhang/DSKD scripts/tinyllama/dskd_cma_tinyllama.sh:36-37,48-49 "
            "(KD_RATE 0.5, KD_TEMP 2.0, dual_space_kd_with_cma, forward_kl); "
            "code/arguments.py:141 (--teacher-temperature 1.0)",
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
        teacher_temperature: float = 1.0,
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
        self.teacher_temperature = teacher_temperature
        self.kd_objective = kd_objective
        self.loss_weight = loss_weight
        ds, dt = student_channels, teacher_channels
        learned = ds is not None
        self.query = nn.Linear(2 * ds, 2 * dt) if learned else nn.Identity()
        self.s2t = nn.Linear(ds, dt) if learned else nn.Identity()
        self.t2s = nn.Linear(dt, ds) if learned else nn.Identity()

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False):
        student = token_example(batch, dtype, generator, large)
        b, ts, vs = student["logits_student"].shape
        tt, vt, d = (ts + ts // 8, vs + vs // 4, 64) if large else (ts + 1, vs + 4, 5)
        target_teacher = torch.randint(0, vt, (b, tt), generator=generator)
        target_teacher[:, :3] = -100  # a longer prompt in the teacher's tokens
        target_teacher[-1, tt // 2 :] = -100

        def rand(*shape):
            return torch.randn(*shape, generator=generator, dtype=dtype)

        return {
            "logits_student": student["logits_student"],
            "logits_teacher": rand(b, tt, vt) * 2,
            "target": student["target"],
            "target_teacher": target_teacher,
            "input_ids": torch.randint(0, vs, (b, ts), generator=generator),
            "input_ids_teacher": torch.randint(0, vt, (b, tt), generator=generator),
            "feat_student": rand(b, ts, d),
            "feat_teacher": rand(b, tt, d),
            "embed_student": rand(vs, d),
            "embed_teacher": rand(vt, d),
            "lm_head_student": rand(vs, d),
            "lm_head_teacher": rand(vt, d),
        }

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor,
        target_teacher: Tensor,
        input_ids: Tensor,
        input_ids_teacher: Tensor,
        feat_student: Tensor,
        feat_teacher: Tensor,
        embed_student: Tensor,
        embed_teacher: Tensor,
        lm_head_student: Tensor,
        lm_head_teacher: Tensor,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T_s, V_s) student logits.
            logits_teacher: (B, T_t, V_t) teacher logits (its own tokenizer).
            target: (B, T_s) int64 student labels; -100 marks positions left out.
            target_teacher: (B, T_t) int64 teacher labels; -100 marks positions left out.
            input_ids: (B, T_s) int64 student input tokens.
            input_ids_teacher: (B, T_t) int64 teacher input tokens.
            feat_student: (B, T_s, D_s) student last hidden states.
            feat_teacher: (B, T_t, D_t) teacher last hidden states.
            embed_student: (V_s, D_s) student input embedding.
            embed_teacher: (V_t, D_t) teacher input embedding.
            lm_head_student: (V_s, D_s) student output embedding.
            lm_head_teacher: (V_t, D_t) teacher output embedding.

        Returns:
            The scalar loss.
        """
        check_two_vocabularies(logits_student, logits_teacher, target, target_teacher)
        (b, ts, vs), (_, tt, vt) = logits_student.shape, logits_teacher.shape
        ds, dt = feat_student.shape[-1], feat_teacher.shape[-1]
        _check_width("input_ids", input_ids, (b, ts), "the student's tokens")
        _check_width("input_ids_teacher", input_ids_teacher, (b, tt), "the teacher's tokens")
        _check_width("feat_student", feat_student, (b, ts, ds), "(B, T_s, D_s)")
        _check_width("feat_teacher", feat_teacher, (b, tt, dt), "(B, T_t, D_t)")
        for name, table, vocab, width in (
            ("embed_student", embed_student, vs, ds),
            ("embed_teacher", embed_teacher, vt, dt),
            ("lm_head_student", lm_head_student, vs, ds),
            ("lm_head_teacher", lm_head_teacher, vt, dt),
        ):
            _check_width(name, table, (vocab, width), "(V, D) of that model's logits and states")
        check_projectors(self.s2t, self.t2s, feat_student, feat_teacher)
        if not isinstance(self.s2t, nn.Linear) and ds != dt:
            raise ValueError(
                f"without projectors (student_channels, teacher_channels) the hidden widths must "
                f"be equal: feat_student {tuple(feat_student.shape)} vs feat_teacher "
                f"{tuple(feat_teacher.shape)}"
            )
        dtype = compute_dtype(logits_student)
        mask_s = position_mask(target, target.shape)
        mask_t = position_mask(target_teacher, target_teacher.shape)
        in_s, y_s = _embed(input_ids, target, mask_s, embed_student, dtype)
        in_t, y_t = _embed(input_ids_teacher, target_teacher, mask_t, embed_teacher, dtype)
        keys = torch.cat([in_t, y_t], -1)
        h_t = feat_teacher.detach().to(dtype)
        query = self.query(torch.cat([in_s, y_s], -1))
        value_s = self.s2t(feat_student.to(dtype))
        value_t = self.t2s(h_t / h_t.std() + y_t / y_t.std())
        align = query @ (keys / keys.std()).transpose(-1, -2) / math.sqrt(2 * dt)
        both = mask_s[:, :, None] & mask_t[:, None, :]
        align = align - 100000.0 * (~both).to(dtype)
        t2s = torch.softmax(align, -1) @ value_t
        s2t = torch.softmax(align.transpose(-1, -2), -1) @ value_s
        t2s_logits = (t2s @ lm_head_student.detach().to(dtype).t())[mask_s]
        s2t_logits = (s2t @ lm_head_teacher.detach().to(dtype).t())[mask_t]
        labels = target[mask_s]
        t2s_ce = F.cross_entropy(t2s_logits, labels, reduction="sum")
        temp = self.temperature
        log_q = F.log_softmax(logits_student[mask_s].to(dtype) / temp, dim=-1)
        log_t2s = F.log_softmax(t2s_logits.detach() / (temp * self.teacher_temperature), dim=-1)
        if self.kd_objective == "forward_kl":
            t2s_kd = _kl_rows(log_t2s, log_q)
        else:
            t2s_kd = _kl_rows(log_q, log_t2s)
        t2s_kd = torch.where(t2s_logits.argmax(-1) == labels, t2s_kd, 0.0).sum()
        log_p = F.log_softmax(logits_teacher.detach()[mask_t].to(dtype) / temp, dim=-1)
        s2t_kd = _kl_rows(log_p, F.log_softmax(s2t_logits / temp, dim=-1)).sum()
        return self.loss_weight * (t2s_ce + t2s_kd + s2t_kd) / max(int(mask_s.sum()), 1)


def _embed(
    ids: Tensor, labels: Tensor, mask: Tensor, table: Tensor, dtype
) -> tuple[Tensor, Tensor]:
    """Embeddings of the input tokens and of the labels at labelled positions (token 0
    elsewhere, as the official code reads them), as constants."""
    zero = torch.zeros_like(labels)
    table = table.detach().to(dtype)
    return F.embedding(torch.where(mask, ids, zero), table), F.embedding(
        torch.where(mask, labels, zero), table
    )
