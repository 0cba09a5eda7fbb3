"""The distillation harness: taps, inputs, lazy adapters, frozen teacher, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require

torch = require("torch")

from kdsurvey.arena.models import ConvClassifier  # noqa: E402
from kdsurvey.distill import Distiller, TapError  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code() -> str:
    """The Python block under the README's "Distil with the harness" heading."""
    text = README.read_text(encoding="utf-8").split("### Distil with the harness\n", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def readme_example() -> list[float]:
    """Runs the README's harness example as printed; returns the loss of each step."""
    namespace: dict = {}
    exec(compile(readme_code(), str(README), "exec"), namespace)  # noqa: S102 - our README
    return namespace["losses"]


def test_readme_example_trains():
    assert "Distiller(" in readme_code() and "distiller.setup(" in readme_code()
    losses = readme_example()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def _pair():
    torch.manual_seed(0)
    return ConvClassifier((8, 16, 32)), ConvClassifier((4, 8, 16))


def _batch(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_adapters_are_trained_and_teacher_frozen():
    teacher, student = _pair()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    d = Distiller(teacher, student, "fitnet", student_taps=["stage2"], teacher_taps=["stage2"])
    x, y = _batch()
    d.setup(x, y)
    adapter = [p for p in d.loss.parameters()]
    assert adapter, "FitNet built with channel sizes owns a regressor"
    params = {id(p) for p in d.parameters()}
    assert all(id(p) in params for p in adapter)
    assert all(id(p) in params for p in student.parameters())
    assert not any(id(p) in params for p in teacher.parameters())
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    w0 = adapter[0].detach().clone()
    d.train()
    assert not teacher.training and student.training
    out = d(x, y)
    out.loss.backward()
    opt.step()
    assert not torch.equal(w0, adapter[0])
    assert all(p.grad is None for p in teacher.parameters())
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats untouched too
    assert out.parts["total"] == pytest.approx(out.parts["task"] + out.parts["distill"], rel=1e-5)
    assert out.output.shape == (8, 10)


def test_inputs_follow_the_forward_signature():
    teacher, student = _pair()
    taps = ["stage1", "stage2", "stage3"]
    d = Distiller(teacher, student, "rkd", student_taps=taps, teacher_taps=taps)
    x, y = _batch()
    d.setup(x, y)
    ctx = d._run(x, y)
    kw = d.loss_inputs(ctx)
    assert set(kw) == {"feat_student", "feat_teacher"}
    assert kw["feat_student"].shape == (8, 16) and kw["feat_teacher"].shape == (8, 32)  # pooled
    d2 = Distiller(teacher, student, "ab", student_taps=taps, teacher_taps=taps).setup(x, y)
    kw2 = d2.loss_inputs(d2._run(x, y))
    assert [t.shape[1] for t in kw2["feats_student"]] == [4, 8, 16]
    assert sum(p.numel() for p in d2.loss.parameters()) > 0  # AB's connectors, built lazily
    d3 = Distiller(teacher, student, "dkd").setup(x, y)
    assert set(d3.loss_inputs(d3._run(x, y))) == {"logits_student", "logits_teacher", "target"}


def test_unknown_tap_lists_close_matches_first():
    teacher, student = _pair()
    with pytest.raises(TapError) as e:
        Distiller(teacher, student, "fitnet", student_taps=["stage_2"], teacher_taps=["stage2"])
    msg = str(e.value)
    assert "student has no submodule 'stage_2'" in msg
    assert msg.index("did you mean 'stage2'") < msg.index("modules:")


def test_shape_error_names_both_shapes_and_layers():
    teacher, student = _pair()
    d = Distiller(teacher, student, "cwd", student_taps=["stage1"], teacher_taps=["stage2"])
    with pytest.raises(ValueError) as e:
        d.setup(*_batch())
    msg = str(e.value)
    assert "(8, 4, 8, 8)" in msg and "(8, 16, 4, 4)" in msg
    assert "stage1" in msg and "stage2" in msg and "'cwd'" in msg


def test_setup_is_required_and_missing_inputs_are_named():
    teacher, student = _pair()
    d = Distiller(teacher, student, "kd")
    with pytest.raises(RuntimeError, match="setup"):
        d(*_batch())
    taps = ["stage2", "stage3"]
    d = Distiller(teacher, student, "bckd", student_taps=taps, teacher_taps=taps)
    with pytest.raises(TypeError, match="classifier_teacher.*providers"):
        d.setup(*_batch())
    d = Distiller(
        teacher,
        student,
        "bckd",
        student_taps=taps,
        teacher_taps=taps,
        providers={"classifier_teacher": lambda ctx: ctx.distiller.teacher.fc},
    )
    d.setup(*_batch())  # with the provider it runs


def test_prebuilt_loss_and_weights():
    from kdsurvey.losses import create

    teacher, student = _pair()
    x, y = _batch()
    d = Distiller(teacher, student, create("kd", temperature=2.0), weight=0.5, task_weight=0.0)
    d.setup(x, y)
    out = d(x, y)
    assert out.loss.item() == pytest.approx(0.5 * out.distill_loss.item(), rel=1e-6)
