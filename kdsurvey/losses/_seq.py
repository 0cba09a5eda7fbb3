"""Token-level inputs of the language-model losses: shape checks, label masks, token means.

Hugging Face conventions: logits ``(B, T, V)``, labels ``(B, T)`` int64 where ``-100`` marks a
position that is not trained on. Every loss here reads its valid positions from the labels and
computes only on those rows (``logits[mask]`` is ``(N, V)``), so padding never reaches the math
and the reductions are plain means over the rows kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE = -100  # the Hugging Face label that marks a position to leave out


def check_tokens(logits: Tensor, target: Tensor, what: str = "logits_student") -> None:
    """``logits`` is ``(B, T, V)`` and ``target`` ``(B, T)`` integer labels; else ``ValueError``."""
    if logits.dim() != 3:
        raise ValueError(f"{what} must be (B, T, V), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:2] or target.is_floating_point():
        raise ValueError(
            f"target {tuple(target.shape)} does not match {what} {tuple(logits.shape)}: expected "
            f"integer labels of shape {tuple(logits.shape[:2])}"
        )


def check_pair(
    student: Tensor,
    teacher: Tensor,
    target: Tensor,
    same_vocab: bool = True,
    what: str = "logits_student",
) -> None:
    """Student and teacher logits of the same positions (and vocabulary unless told otherwise)."""
    check_tokens(student, target, what)
    same = student.shape == teacher.shape if same_vocab else student.shape[:2] == teacher.shape[:2]
    if teacher.dim() != 3 or not same:
        raise ValueError(
            f"logits shapes differ: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
        )


def compute_dtype(logits: Tensor) -> Tensor:
    """Half-precision logits in float32 (as every official code casts); others unchanged."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def valid_rows(target: Tensor, *logits: Tensor) -> tuple[Tensor, ...]:
    """The ``(N, V)`` rows of each logits tensor whose label is not ``-100``, in row-major order."""
    mask = target != IGNORE
    return tuple(compute_dtype(z[mask]) for z in logits)


def token_mean(values: Tensor) -> Tensor:
    """Mean over the kept tokens: the batch's sum divided by its number of labelled positions.

    With no labelled position the mean of nothing is 0 (the official codes divide 0 by 0).
    """
    return values.sum() / max(values.numel(), 1)


def token_example(
    batch: int,
    dtype: torch.dtype,
    generator: torch.Generator | None,
    large: bool,
    teacher_vocab: int | None = None,
) -> dict[str, Tensor]:
    """Logits ``(B, T, V)`` and labels with a prompt and right padding marked ``-100``.

    Small: ``(batch, 6, 11)``; ``large``: ``(8, 256, 4096)`` (2,048 tokens). ``teacher_vocab``
    gives the teacher another vocabulary size (cross-tokenizer losses).
    """
    b, t, v = (8, 256, 4096) if large else (batch, 6, 11)
    vt = v if teacher_vocab is None else (2 * v if large else teacher_vocab)
    target = torch.randint(0, v, (b, t), generator=generator)
    target[:, :1] = IGNORE  # the prompt
    target[::2, -2:] = IGNORE  # right padding of every other sequence
    return {
        "logits_student": torch.randn(b, t, v, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(b, t, vt, generator=generator, dtype=dtype) * 2,
        "target": target,
    }
