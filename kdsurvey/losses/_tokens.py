"""Token-level losses of language models: input checks, position mask, reductions, chunking.

Every token-level loss takes student and teacher logits ``[B, T, V]`` whose positions are already
aligned (the loss does not shift) and an optional ``target`` ``[B, T]`` (int64, ``-100`` marks
ignored positions, the Hugging Face convention). It computes one value per position from the two
rows ``[V]`` of that position (a *row function*, written once per loss over 2-D ``[N, V]`` rows)
and reduces those values with weights that say how the libraries average: the token mean over
unmasked positions (DistiLLM, torchtune, TRL, DistillKit), the mean over each sequence's unmasked
positions then over sequences, or the sum divided by the batch size ``B``. Writing the reduction
as weights ``w`` (``loss = sum_i w_i * row_i``) is what lets :func:`token_loss` evaluate a loss
chunk by chunk: each chunk's value and student gradient are computed at once and only the
gradient buffer (the size of the student logits, which autograd would build anyway) is kept, so
vocabularies of 128k-256k never hold more than one ``[B, T, V]`` tensor beyond the inputs.
Positions with no weight (ignored labels) add nothing; their logits may be ``-inf`` (vocabulary
masking, see :class:`RowPair`) but not NaN, which would reach the gradient as in every library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor

from kdsurvey.losses._checks import shape_tuple
from kdsurvey.losses.base import DistillationLoss

IGNORE_INDEX = -100
# The reductions of the libraries, by name: see :func:`position_weights`.
REDUCTIONS = ("token_mean", "sequence_mean", "batch_sum")

RowFunction = Callable[..., Tensor]


def check_token_inputs(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor | None = None,
    teacher_topk_indices: Tensor | None = None,
) -> None:
    """Raise one ``ValueError`` listing every problem of the inputs, each naming the shapes.

    Dense teacher: both logits ``[B, T, V]`` of equal shape. Sparse teacher
    (``teacher_topk_indices`` given): ``logits_teacher`` and the indices ``[B, T, k]`` (int64, each
    in ``[0, V)``), with ``B, T`` those of the student. ``target``: ``[B, T]`` int64.
    """
    problems = []
    s, t = logits_student, logits_teacher
    if s.dim() != 3:
        problems.append(f"logits_student must be [B, T, V], got shape {shape_tuple(s)}")
    if teacher_topk_indices is None:
        if s.shape != t.shape:
            problems.append(
                f"logits_student {shape_tuple(s)} and logits_teacher {shape_tuple(t)} must have the "
                "same shape [B, T, V]"
            )
    else:
        idx = teacher_topk_indices
        if t.shape != idx.shape or t.dim() != 3 or t.shape[:2] != s.shape[:2]:
            problems.append(
                f"top-k teacher: logits_teacher {shape_tuple(t)} and teacher_topk_indices "
                f"{shape_tuple(idx)} must both be [B, T, k] with B, T of logits_student {shape_tuple(s)}"
            )
        if idx.dtype != torch.int64:
            problems.append(f"teacher_topk_indices must be int64, got {idx.dtype}")
        elif idx.numel() and s.dim() == 3 and (idx.min() < 0 or idx.max() >= s.shape[-1]):
            problems.append(f"teacher_topk_indices must lie in [0, {s.shape[-1]})")
    if not s.is_floating_point() or not t.is_floating_point():
        problems.append(f"logits must be floating point, got {s.dtype} and {t.dtype}")
    if target is not None:
        if target.shape != s.shape[:2] or target.dim() != 2:
            problems.append(
                f"target {shape_tuple(target)} must be [B, T] = {shape_tuple(s)[:2]} "
                f"(logits_student {shape_tuple(s)})"
            )
        if target.dtype != torch.int64:
            problems.append(f"target must be int64 (-100 = ignored), got {target.dtype}")
    if problems:
        raise ValueError("; ".join(problems))


def position_mask(target: Tensor | None, shape: Sequence[int], device=None) -> Tensor:
    """Boolean ``[B, T]``: True where the position counts (``target != -100``; all without one)."""
    if target is None:
        return torch.ones(tuple(shape[:2]), dtype=torch.bool, device=device)
    return target != IGNORE_INDEX


def position_weights(mask: Tensor, reduction: str, dtype: torch.dtype) -> Tensor:
    """Weights ``w`` ``[B, T]`` such that the loss is ``sum(w * per_position)``.

    ``token_mean``: ``1 / n`` on each of the ``n`` unmasked positions of the batch.
    ``sequence_mean``: ``1 / (B * n_b)`` on the ``n_b`` unmasked positions of sequence ``b``
    (a sequence with none adds nothing but still counts in ``B``). ``batch_sum``: ``1 / B``
    (the sum over unmasked positions divided by the batch size, PyTorch's ``batchmean`` on
    ``[B, T, V]``). Without any unmasked position the weights are zero and the loss is 0
    (torchtune's and TRL's choice; DistiLLM's ``0 / 0`` is NaN).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    m = mask.to(dtype)
    if reduction == "token_mean":
        return m / m.sum().clamp_min(1)
    if reduction == "sequence_mean":
        return m / (m.sum(1, keepdim=True).clamp_min(1) * m.shape[0])
    return m / m.shape[0]


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype the math runs in: at least float32 (half inputs are upcast, float64 stays)."""
    return torch.promote_types(x.dtype, torch.float32)


def token_loss(
    row_fn: RowFunction,
    logits_student: Tensor,
    teacher: Sequence[Tensor],
    weights: Tensor,
    chunk_size: int | None = None,
) -> Tensor:
    """``sum_i w_i * row_fn(student_i, *teacher_i)`` over the positions ``i`` of the batch.

    ``row_fn`` takes 2-D rows (``[N, V]`` student, and the teacher tensors ``[N, *]``) and returns
    ``[N]``. ``teacher`` tensors are ``[B, T, *]`` and treated as constants. With ``chunk_size``
    (positions per chunk) the value and the student gradient are computed chunk by chunk in the
    forward pass (:class:`_ChunkedRows`); the result and its gradient equal the plain evaluation
    up to summation order. The chunked path supports one backward pass (no double backward).
    """
    n = logits_student.shape[0] * logits_student.shape[1]
    student = logits_student.reshape(n, logits_student.shape[-1])
    rows = [t.detach().reshape(n, *t.shape[2:]) for t in teacher]
    w = weights.reshape(n)
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of positions, got {chunk_size}")
        return _ChunkedRows.apply(student, w, row_fn, chunk_size, *rows)
    keep = w != 0
    values = row_fn(student, *rows)
    return torch.where(keep, values * w, values.new_zeros(())).sum()


class _ChunkedRows(torch.autograd.Function):
    """Chunked evaluation: in the forward pass, for each chunk of positions with weight, the
    value and its gradient w.r.t. those student rows are computed by local autograd and the
    gradient is written into one buffer; backward scales that buffer by the incoming gradient.

    Peak memory is the inputs, the buffer and one chunk's intermediates (torchtune's chunked
    losses keep every chunk's autograd intermediates until backward instead).
    """

    @staticmethod
    def forward(ctx, student, weights, row_fn, chunk_size, *teacher):
        need_grad = ctx.needs_input_grad[0]
        grad = torch.empty_like(student) if need_grad else None
        total = torch.zeros((), dtype=compute_dtype(student), device=student.device)
        for start in range(0, student.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            w = weights[rows]
            pos = torch.nonzero(w).squeeze(1)
            # Copy out the weighted rows only when they are few: otherwise computing the ignored
            # rows too (weight 0) costs less than copying the others.
            whole = 2 * pos.numel() >= w.numel()
            if pos.numel() == 0:
                if need_grad:
                    grad[rows].zero_()
                continue
            s = student[rows] if whole else student[rows].index_select(0, pos)
            t = [x[rows] if whole else x[rows].index_select(0, pos) for x in teacher]
            with torch.enable_grad():
                s = s.detach().requires_grad_(need_grad)
                value = (row_fn(s, *t) * (w if whole else w.index_select(0, pos))).sum()
                if need_grad:
                    (g,) = torch.autograd.grad(value, s)
                    if whole:
                        grad[rows].copy_(g)
                    else:
                        grad[rows].zero_().index_copy_(0, pos, g)
            total += value.detach()
        ctx.grad = grad
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None
        if grad is None:
            raise RuntimeError("the chunked token loss supports one backward pass only")
        if not bool(grad_output == 1):  # the loss's own weights are already in ``weights``
            grad.mul_(grad_output.to(grad.dtype))
        return (grad, None, None, None) + (None,) * (len(ctx.needs_input_grad) - 4)


def log_probs(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-softmax over the vocabulary of ``logits / temperature``, in :func:`compute_dtype`."""
    x = logits.to(compute_dtype(logits))
    return torch.log_softmax(x / temperature if temperature != 1.0 else x, dim=-1)


def masked_sum(values: Tensor, inf: Tensor) -> Tensor:
    """Sum over the vocabulary of ``values``, entries at masked (infinite-logit) tokens as 0.

    The official codes (DistiLLM, MiniLLM, torchtune) ``masked_fill`` every product at tokens
    whose logit is infinite, the vocabulary masking of ``-inf`` logits, so that ``0 * -inf`` is 0.
    """
    return torch.where(inf, values.new_zeros(()), values).sum(-1)


def log_mixture(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """``log(weight_a * a + (1 - weight_a) * b)`` from log-probabilities, without underflow."""

    def log_weight(w: float) -> float:
        return math.log(w) if w > 0 else -math.inf

    return torch.logaddexp(log_a + log_weight(weight_a), log_b + log_weight(1.0 - weight_a))


def infinite_mask(*logits: Tensor) -> Tensor | None:
    """Where any of ``logits`` is infinite (the ``-inf`` of vocabulary masking); ``None`` when
    all are finite, found by one reduction per tensor so the common case allocates nothing."""
    if all(bool(torch.isfinite(x.sum())) for x in logits):
        return None
    mask = logits[0].isinf()
    for x in logits[1:]:
        mask = mask | x.isinf()
    return mask


class RowPair:
    """Student and teacher distributions of ``[N, V]`` rows, computed once and only if used.

    ``log_q``/``log_p`` (student/teacher log-softmax of the logits divided by ``temperature``)
    and ``q``/``p`` are read lazily. Where either model's logit is infinite (``inf``), the
    log-probabilities are set to 0 and the probabilities to 0, so every product ``p * (...)`` or
    ``q * (...)`` is exactly 0 there, with a finite gradient: the official codes' ``masked_fill``
    of those products (DistiLLM, MiniLLM, torchtune), without their NaN gradient.
    """

    def __init__(self, s: Tensor, t: Tensor, temperature: float = 1.0):
        s, t = s.to(compute_dtype(s)), t.to(compute_dtype(t))
        self.s = s / temperature if temperature != 1.0 else s
        self.t = t / temperature if temperature != 1.0 else t

    @cached_property
    def inf(self) -> Tensor | None:
        return infinite_mask(self.s, self.t)

    def _clean(self, x: Tensor) -> Tensor:
        return x if self.inf is None else x.masked_fill(self.inf, 0.0)

    @cached_property
    def log_q(self) -> Tensor:
        return self._clean(torch.log_softmax(self.s, dim=-1))

    @cached_property
    def log_p(self) -> Tensor:
        return self._clean(torch.log_softmax(self.t, dim=-1))

    @cached_property
    def q(self) -> Tensor:
        return self._clean(torch.softmax(self.s, dim=-1))

    @cached_property
    def p(self) -> Tensor:
        return self._clean(torch.softmax(self.t, dim=-1))

    def cross_entropy(self) -> Tensor:
        """``-sum_v p log q`` per row. With finite logits it is ``logsumexp(z_s) - <p, z_s>``,
        which never forms ``log q`` nor checks for infinite logits (fewer passes over the rows,
        forward and backward); a non-finite result falls back to the masked form."""
        if "inf" not in self.__dict__:  # try the finite form first: its result tells
            p = torch.softmax(self.t, dim=-1)
            ce = torch.logsumexp(self.s, dim=-1) - torch.einsum("nv,nv->n", p, self.s)
            if bool(torch.isfinite(ce).all()):
                return ce
        if self.inf is None:
            return torch.logsumexp(self.s, dim=-1) - torch.einsum("nv,nv->n", self.p, self.s)
        return -(self.p * self.log_q).sum(-1)

    def forward_kl(self) -> Tensor:
        """``KL(p || q)`` per row: the cross-entropy minus the teacher's entropy."""
        return self.cross_entropy() + (self.p * self.log_p).sum(-1)

    def reverse_kl(self) -> Tensor:
        """``KL(q || p)`` per row."""
        return (self.q * (self.log_q - self.log_p)).sum(-1)


def token_example(batch, dtype, generator, large) -> dict[str, Tensor]:
    """Logits ``[B, T, V]`` (``[2, 128, 32000]`` when ``large``) and a target whose first two
    positions (a prompt) and the last sequence's tail (padding) are ``-100``."""
    b, t, v = (2, 128, 32000) if large else (batch, 6, 11)
    target = torch.randint(0, v, (b, t), generator=generator)
    target[:, :2] = IGNORE_INDEX
    target[-1, t // 2 :] = IGNORE_INDEX
    return {
        "logits_student": torch.randn(b, t, v, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(b, t, v, generator=generator, dtype=dtype) * 2,
        "target": target,
    }


class TokenLoss(DistillationLoss):
    """Base of the token-level losses: checks, position weights, optional chunking and top-k.

    A subclass gives :meth:`rows` (one value per position from ``[N, V]`` student and teacher
    logits) and, for a reduction other than the token mean, :meth:`weights`; :meth:`scale` is
    what multiplies the reduced value (``loss_weight``, and ``T^2`` where the official code has
    it). A loss that accepts a sparse teacher also derives from :class:`TopKTeacher`.

    ``chunk_size`` (positions per chunk, ``None``: all at once) selects the chunked evaluation of
    :func:`token_loss`: same value and gradient, a fraction of the memory.
    """

    reduction_name: ClassVar[str] = "token_mean"

    def __init__(self, loss_weight: float = 1.0, chunk_size: int | None = None):
        super().__init__()
        self.loss_weight = loss_weight
        self.chunk_size = chunk_size

    def rows(self, s: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def scale(self) -> float:
        return self.loss_weight

    def weights(self, mask: Tensor, target: Tensor | None, dtype: torch.dtype) -> Tensor:
        return position_weights(mask, self.reduction_name, dtype)

    def forward(
        self, logits_student: Tensor, logits_teacher: Tensor, target: Tensor | None = None
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T, V) student logits.
            logits_teacher: (B, T, V) teacher logits.
            target: (B, T) int64 labels, -100 at ignored positions (``None``: all count).

        Returns:
            The scalar loss.
        """
        return self.evaluate(logits_student, logits_teacher, target)

    def evaluate(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor | None,
        teacher_topk_indices: Tensor | None = None,
    ) -> Tensor:
        """Check the inputs, weigh the positions and sum the rows (chunked if asked)."""
        check_token_inputs(logits_student, logits_teacher, target, teacher_topk_indices)
        mask = position_mask(target, logits_student.shape, logits_student.device)
        w = self.weights(mask, target, compute_dtype(logits_student)) * self.scale()
        if teacher_topk_indices is None:
            fn, teacher = self.rows, [logits_teacher]
        else:
            fn, teacher = self.topk_rows, [logits_teacher, teacher_topk_indices]
        return token_loss(fn, logits_student, teacher, w, self.chunk_size)

    @classmethod
    def example_inputs(cls, batch=4, dtype=torch.float32, generator=None, large=False) -> dict:
        return token_example(batch, dtype, generator, large)


class TopKTeacher:
    """Mixin (first base) of the forward-KL losses: the teacher may be given by its top-k logits.

    Offline distillation often stores only the teacher's ``k`` largest logits per position
    (values and indices ``[B, T, k]``). A forward KL needs the teacher's distribution only where
    it is non-zero, so it can be computed from them once the missing mass is fixed: here it is
    zero and the ``k`` probabilities are renormalised (:func:`topk_forward_rows`). A reverse KL or
    a mixture would need the teacher on every token, so the other losses refuse such input.
    """

    def topk_rows(self, s: Tensor, t_values: Tensor, t_indices: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(
        self,
        logits_student: Tensor,
        logits_teacher: Tensor,
        target: Tensor | None = None,
        teacher_topk_indices: Tensor | None = None,
    ) -> Tensor:
        """The loss of one batch.

        Args:
            logits_student: (B, T, V) student logits.
            logits_teacher: (B, T, V) teacher logits, or the logits of the teacher's top-k tokens
                (B, T, k) when ``teacher_topk_indices`` is given.
            target: (B, T) int64 labels, -100 at ignored positions (``None``: all count).
            teacher_topk_indices: (B, T, k) int64 vocabulary indices of ``logits_teacher``.

        Returns:
            The scalar loss.
        """
        return self.evaluate(logits_student, logits_teacher, target, teacher_topk_indices)


def topk_forward_rows(
    s: Tensor, t_values: Tensor, t_indices: Tensor, temperature: float, cross_entropy: bool
) -> Tensor:
    """Forward KL (or cross-entropy) against a teacher known by its top-k logits only.

    The teacher distribution is the softmax of its ``k`` logits (``/ T``): the mass of the other
    tokens is taken as zero and the ``k`` probabilities renormalised, DistillKit's
    ``MissingProbabilityHandling.ZERO``. The student log-probabilities are the full-vocabulary
    log-softmax read at the ``k`` indices. With ``k = V`` this is the dense loss exactly.
    """
    log_q = log_probs(s, temperature).gather(-1, t_indices)
    log_p = log_probs(t_values, temperature)
    inf = torch.isinf(log_q) | torch.isinf(log_p)  # [N, k]: small
    log_q, log_p = log_q.masked_fill(inf, 0.0), log_p.masked_fill(inf, 0.0)
    p = log_p.exp().masked_fill(inf, 0.0)
    if cross_entropy:
        return -(p * log_q).sum(-1)
    return (p * (log_p - log_q)).sum(-1)
