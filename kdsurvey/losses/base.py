"""What every distillation loss shares: the base class and its contract.

Every loss is a ``torch.nn.Module`` whose ``forward`` takes keyword tensors named as in
``shared/reference/README.md`` (``logits_student``, ``feat_teacher``, ``feats_student``,
``target``...) and returns a scalar. Teacher inputs are treated as constants (detached).
``example_inputs`` makes inputs of the right shapes so the same property tests, demo and benchmark
run over the whole registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DistillationLoss(nn.Module):
    """Base class: registry metadata plus the hooks the generic tests, demo and benchmark use."""

    name: ClassVar[str]  # set by ``register``
    paper: ClassVar[str]  # catalogue id of the paper
    family: ClassVar[str]  # logit | feature | similarity
    evidence: ClassVar[str]  # how far it is proven: a key of registry.EVIDENCE
    # True when the loss reaches its minimum, zero, once every student input equals its teacher
    # input.
    zero_at_match: ClassVar[bool] = True
    # True when permuting the batch (of every input alike) leaves the loss unchanged.
    batch_invariant: ClassVar[bool] = True

    @classmethod
    def example_inputs(
        cls,
        batch: int = 4,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        large: bool = False,
    ) -> dict[str, Any]:
        """Random forward kwargs of realistic shapes (``large``: benchmark size).

        Student and teacher tensors of a pair have the same shape, so setting the student equal to
        the teacher is always possible. The default follows the input names of ``forward``
        (``logits_*`` with or without ``target``, ``feats_*``, ``feat_*``); losses with other
        inputs override it.
        """
        names = inspect.signature(cls.forward).parameters
        if "logits_student" in names:
            return logits_example(batch, dtype, generator, large, with_target="target" in names)
        if "feats_student" in names:
            return feature_example(batch, dtype, generator, large, layers=2)
        if "feat_student" in names:
            return feature_example(batch, dtype, generator, large)
        raise NotImplementedError(f"{cls.__name__} must define example_inputs")


def logits_example(batch, dtype, generator, large, with_target=False) -> dict[str, Tensor]:
    """Student/teacher logits (and labels) for classification losses: 256x100 when ``large``."""
    n, classes = (256, 100) if large else (batch, 10)
    out = {
        "logits_student": torch.randn(n, classes, generator=generator, dtype=dtype),
        "logits_teacher": torch.randn(n, classes, generator=generator, dtype=dtype) * 2,
    }
    if with_target:
        out["target"] = torch.randint(0, classes, (n,), generator=generator)
    return out


def feature_example(batch, dtype, generator, large, layers=0) -> dict[str, Any]:
    """Student/teacher feature maps: 64x256x16x16 when ``large``; ``layers`` > 0 gives lists."""
    shape = (64, 256, 16, 16) if large else (batch, 8, 4, 4)

    def rand():
        return torch.randn(*shape, generator=generator, dtype=dtype)

    if layers:
        return {
            "feats_student": [rand() for _ in range(layers)],
            "feats_teacher": [rand() for _ in range(layers)],
        }
    return {"feat_student": rand(), "feat_teacher": rand()}


def check_same_shape(student: Tensor, teacher: Tensor, what: str = "student and teacher") -> None:
    """Raise ``ValueError`` naming both shapes when they differ."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"{what} shapes differ: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
        )


def check_same_length(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    """Raise ``ValueError`` when student and teacher give different numbers of layers."""
    if len(students) != len(teachers):
        raise ValueError(f"student gives {len(students)} layers but teacher gives {len(teachers)}")


def pool_to_smaller(fs: Tensor, ft: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the map with the larger height down to the other's (H, W) (AT, NST, SemCKD).

    The official code pools to a square (H, H); the same for the square maps it is used with.
    """
    hs, ht = fs.shape[2], ft.shape[2]
    if hs > ht:
        fs = F.adaptive_avg_pool2d(fs, ft.shape[2:])
    elif hs < ht:
        ft = F.adaptive_avg_pool2d(ft, fs.shape[2:])
    return fs, ft
