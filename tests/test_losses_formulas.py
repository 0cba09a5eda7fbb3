"""Hand-worked values for losses that have no case in ../shared/reference: each expected number
is computed here from the paper's equation with plain `math`, not with the library."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the losses extra (torch) is not installed")

from kdsurvey.losses import create  # noqa: E402


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def test_ntce_kd_shrinks_teacher_top1_and_student_label_by_the_teacher_margin():
    # Teacher top-1 is class 0 with margin 3 - 1 = 2; the label is class 2.
    teacher, student = [3.0, 1.0, 0.0], [0.5, -0.5, 1.0]
    loss = create("ntce_kd", temperature=2.0, shrink_factors=(1.0, -0.5))
    got = loss(torch.tensor([student]), torch.tensor([teacher]), torch.tensor([2]))
    expected = 0.0
    for f in (1.0, -0.5):
        t_shrunk = [teacher[0] - 2 * f, teacher[1], teacher[2]]
        s_shrunk = [student[0], student[1], student[2] - 2 * f]
        expected += 4.0 * _kl(_softmax(t_shrunk, 2.0), _softmax(s_shrunk, 2.0)) / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_ntce_kd_with_factor_zero_is_plain_kd():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=gen), torch.randn(8, 10, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)
    ntce = create("ntce_kd", temperature=4.0, shrink_factors=(0.0,))(s, t, y)
    assert ntce.item() == pytest.approx(create("kd", temperature=4.0)(s, t).item(), rel=1e-6)
