"""Input checks shared by the losses: each raises ``ValueError`` naming both shapes."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def check_target(logits: Tensor, target: Tensor) -> None:
    """Class labels ``(B,)``, one per row of ``logits``; the error names both shapes."""
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits_student "
            f"{tuple(logits.shape)}: expected ({logits.shape[0]},)"
        )


def check_same_shape(
    student: Tensor, teacher: Tensor, what: str = "student and teacher", hint: str = ""
) -> None:
    """Raise ``ValueError`` naming both shapes when they differ (``hint``: what to do, appended)."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"{what} shapes differ: student {tuple(student.shape)} vs teacher "
            f"{tuple(teacher.shape)}" + (f"; {hint}" if hint else "")
        )


def connector_hint(
    student: Tensor, teacher: Tensor, adapter: str = "connector", per_layer: bool = False
) -> str:
    """The advice for widths that differ when the loss was built without its adapter: the
    constructor arguments that build it (empty when the widths agree). ``per_layer``: the loss
    takes one channel count per map."""
    if student.dim() < 2 or teacher.dim() < 2 or student.shape[1] == teacher.shape[1]:
        return ""
    c_s, c_t = student.shape[1], teacher.shape[1]
    if per_layer:
        args = f"student_channels=[...], teacher_channels=[...] (one count per map; here {c_s} vs {c_t})"
    else:
        args = f"student_channels={c_s}, teacher_channels={c_t}"
    return f"the loss owns a {adapter} for different widths: build it with {args}"


def check_same_length(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    """Raise ``ValueError`` when student and teacher give different numbers of layers."""
    if len(students) != len(teachers):
        raise ValueError(f"student gives {len(students)} layers but teacher gives {len(teachers)}")


def check_leading_dims(
    student: Tensor, teacher: Tensor, dims: int = 1, what: str = "feature"
) -> None:
    """Raise ``ValueError`` naming both shapes when the ranks or the first ``dims`` sizes differ
    (the batch alone by default; widths and spatial sizes may differ)."""
    if student.dim() != teacher.dim() or student.shape[:dims] != teacher.shape[:dims]:
        raise ValueError(
            f"{what} shapes do not match: student {tuple(student.shape)} vs teacher "
            f"{tuple(teacher.shape)}"
        )


def check_layers(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> None:
    """Equal numbers of layers, and equal ranks and batch sizes layer by layer."""
    check_same_length(students, teachers)
    for s, t in zip(students, teachers, strict=True):
        check_leading_dims(s, t)


def tensor_list(x: Tensor | Sequence[Tensor] | None) -> list[Tensor]:
    """One tensor or several (or none) as a list: inputs that may be one layer or many."""
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def shape_tuple(x: Tensor) -> tuple[int, ...]:
    """``x``'s shape as a plain tuple, as the error messages print it."""
    return tuple(x.shape)


def check_same_batch(student: Tensor, teacher: Tensor, what: str = "student and teacher") -> None:
    """Raise ``ValueError`` naming both shapes when the batch sizes differ (other dims may)."""
    if student.dim() == 0 or teacher.dim() == 0 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{what} batch sizes differ: student {shape_tuple(student)} vs teacher {shape_tuple(teacher)}"
        )


def check_same_dims(
    student: Tensor, teacher: Tensor, dims: Sequence[int], what: str, hint: str = ""
) -> None:
    """Raise ``ValueError`` naming both shapes when the given dimensions differ (``hint``: what
    to do, appended)."""
    if student.dim() != teacher.dim() or any(student.shape[d] != teacher.shape[d] for d in dims):
        raise ValueError(
            f"{what} shapes differ: student {shape_tuple(student)} vs teacher "
            f"{shape_tuple(teacher)}" + (f"; {hint}" if hint else "")
        )


def check_teachers(student: Tensor, teachers: Sequence[Tensor], what: str, dims=(0,)) -> None:
    """At least one teacher, and each agrees with the student on ``dims`` (multi-teacher losses)."""
    if not teachers:
        raise ValueError(f"no teacher {what} given")
    for t in teachers:
        check_same_dims(student, t, dims, what)


def check_dense(student: Tensor, teacher: Tensor, what: str) -> None:
    """``ValueError`` naming both shapes unless both are ``(B, *, H, W)`` with equal B, H, W.

    Student and teacher widths may differ: the relations live in each network's own space.
    """
    ok = (
        student.dim() == 4
        and teacher.dim() == 4
        and student.shape[0] == teacher.shape[0]
        and student.shape[2:] == teacher.shape[2:]
    )
    if not ok:
        shapes = f"student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
        raise ValueError(f"{what} shapes differ: {shapes}")


def check_label_map(target: Tensor, batch: int) -> None:
    """A segmentation label map ``(B, H, W)`` for a batch of ``batch`` images."""
    if target.dim() != 3 or target.shape[0] != batch:
        raise ValueError(f"target must be (B, H, W) with B = {batch}, got {tuple(target.shape)}")
