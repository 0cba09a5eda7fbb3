"""The proof in numbers: every stored case computed with the official code
(`tests/fixtures/official_cases`, see its README) passes, and hand-worked values computed here
from the paper's equation with plain `math`, not with the library, match."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import assert_case_file_passes, require

torch = require("torch", "the losses extra")

from kdsurvey.losses import available, create, get  # noqa: E402

OFFICIAL_CASES = sorted((Path(__file__).parent / "fixtures" / "official_cases").glob("*.json"))


def test_official_cases_exist_and_name_registered_losses():
    assert len(OFFICIAL_CASES) >= 46
    assert {p.stem for p in OFFICIAL_CASES} <= set(available())


def test_evidence_reference_means_a_stored_case_and_the_rest_declare_another_level():
    """`reference` is derived: exactly the losses with a case file here have it."""
    with_cases = {p.stem for p in OFFICIAL_CASES}
    assert {name for name in available() if get(name).evidence == "reference"} == with_cases


@pytest.mark.parametrize("path", OFFICIAL_CASES, ids=lambda p: p.stem)
def test_official_cases_pass(path):
    assert_case_file_passes(path)


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def test_ntce_kd_shrinks_teacher_top1_and_student_label_by_the_teacher_margin():
    # Teacher top-1 is class 0 with margin 3 - 1 = 2; the label is class 2.
    teacher, student = [3.0, 1.0, 0.0], [0.5, -0.5, 1.0]
    loss = create("ntce_kd", temperature=2.0, shrink_factors=(1.0, -0.5), loss_weight=1.0)
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
    ntce = create("ntce_kd", temperature=4.0, shrink_factors=(0.0,), loss_weight=1.0)(s, t, y)
    assert ntce.item() == pytest.approx(
        create("kd", temperature=4.0, loss_weight=1.0)(s, t).item(), rel=1e-6
    )


def test_cd_matches_channel_means_and_distils_only_teacher_correct_samples():
    # One stage, B=2, C=2, 2x1 maps: channel attention is the spatial mean.
    fs = torch.tensor([[[[1.0], [3.0]], [[0.0], [0.0]]], [[[2.0], [2.0]], [[1.0], [-1.0]]]])
    ft = torch.tensor([[[[0.0], [0.0]], [[1.0], [1.0]]], [[[2.0], [4.0]], [[0.0], [0.0]]]])
    # means: s = [[2, 0], [2, 0]], t = [[0, 1], [3, 0]]
    cd_term = ((2 - 0) ** 2 + (0 - 1) ** 2 + (2 - 3) ** 2 + 0) / 4
    zs, zt = [[0.2, 0.1], [1.0, -1.0]], [[2.0, 0.0], [0.0, 1.0]]
    target = torch.tensor([0, 0])  # the teacher is right on sample 0 only
    gkd = _kl(_softmax(zt[0]), _softmax(zs[0]))  # T = 1, mean over the one correct sample
    loss = create("cd", cd_weight=6.0, kd_weight=1.0, decay_milestones=30, kd_start_epoch=30)
    args = dict(logits_student=torch.tensor(zs), logits_teacher=torch.tensor(zt), target=target)
    assert loss([fs], [ft], **args).item() == pytest.approx(6 * cd_term + gkd, rel=1e-6)
    # Epoch 30: one decay milestone reached, GKD still off; epoch 31: GKD on.
    assert loss([fs], [ft], **args, epoch=30).item() == pytest.approx(6 * 0.9 * cd_term, rel=1e-6)
    assert loss([fs], [ft], **args, epoch=31).item() == pytest.approx(
        6 * 0.9 * cd_term + gkd, rel=1e-6
    )


def test_response_kd_stage2_falls_back_to_the_label_only_where_the_teacher_is_right():
    t, eps = 0.7, 0.01
    zs = [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    zt = [[1.0, 0.5, 0.0], [0.0, 0.2, 0.5]]
    y = [0, 1]
    # Sample 0: teacher right and the student's CE (on y) below the teacher's: smoothed label.
    # Sample 1: teacher wrong (argmax 2): distilled on the sharpened teacher.
    assert -math.log(_softmax(zs[0])[0]) < -math.log(_softmax(zt[0], t)[0])
    label = [1 - eps + eps / 3, eps / 3, eps / 3]
    ce_label = -sum(a * math.log(b) for a, b in zip(label, _softmax(zs[0])))
    ce_teacher = -sum(a * math.log(b) for a, b in zip(_softmax(zt[1], t), _softmax(zs[1])))
    got = create("response_kd")(torch.tensor(zs), torch.tensor(zt), torch.tensor(y))
    assert got.item() == pytest.approx((ce_label + ce_teacher) / 2, rel=1e-6)
