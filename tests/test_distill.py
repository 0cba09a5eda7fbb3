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


def test_any_batch_size_after_setup():
    """semckd's learned embeddings are sized by the setup batch; larger and short batches
    (a DataLoader's last one) still train."""
    teacher, student = _pair()
    taps = ["stage2", "stage3"]
    d = Distiller(teacher, student, "semckd", student_taps=taps, teacher_taps=taps)
    d.setup(*_batch(8))
    assert d.loss.query is not None  # the learned embeddings exist
    opt = torch.optim.SGD(d.parameters(), lr=0.01)
    for n in (16, 5, 1):
        out = d(*_batch(n))
        assert torch.isfinite(out.loss) and out.output.shape == (n, 10)
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def test_optimiser_created_before_setup_is_refused():
    teacher, student = _pair()
    d = Distiller(teacher, student, "fitnet", student_taps=["stage2"], teacher_taps=["stage2"])
    early = torch.optim.SGD(d.parameters(), lr=0.1)  # the student only: no adapters yet
    x, y = _batch()
    d.setup(x, y)
    before = [p.detach().clone() for p in student.parameters()]
    d(x, y).loss.backward()
    with pytest.raises(RuntimeError, match=r"before distiller\.setup") as e:
        early.step()
    assert "regressor" in str(e.value)  # names the untrained adapter parameters
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))  # nothing moved
    late = torch.optim.SGD(d.parameters(), lr=0.1)
    late.step()  # created after setup: accepted
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    other.step()  # an optimiser of another network is not this distiller's business
    d.remove_hooks()
    early.step()  # the check is gone with the hooks


def test_underivable_inputs_name_the_argument_that_supplies_them():
    teacher, student = _pair()
    taps = ["stage3"]
    d = Distiller(teacher, student, "crd", student_taps=taps, teacher_taps=taps)
    with pytest.raises(TypeError) as e:
        d.setup(*_batch())
    msg = str(e.value)
    assert "providers={'idx': fn(ctx)}" in msg and "loss_kwargs={'n_data': ...}" in msg
    d = Distiller(
        teacher,
        student,
        "crd",
        student_taps=taps,
        teacher_taps=taps,
        providers={"idx": lambda ctx: torch.arange(8)},
    )
    with pytest.raises(ValueError, match=r"loss_kwargs=\{'n_data': \.\.\.\}"):
        d.setup(*_batch())


def test_errors_say_what_to_do():
    from kdsurvey.losses import create

    teacher, student = _pair()
    x, y = _batch()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) score maps.*use 'kd'"):
        Distiller(teacher, student, "skd_pixel").setup(x, y)
    taps = ["stage1", "stage2"]
    with pytest.raises(ValueError) as e:
        Distiller(teacher, student, "alp_kd", student_taps=taps, teacher_taps=taps).setup(x, y)
    first = str(e.value).splitlines()[0]
    assert "teacher layer 1 is (8, 16, 4, 4) and teacher layer 0 is (8, 8, 8, 8)" in first
    assert "student" not in first
    with pytest.raises(ValueError) as e:
        Distiller(teacher, student, "dsd", student_taps=taps, teacher_taps=taps).setup(x, y)
    assert "class score maps" in str(e.value) and "logits shapes" not in str(e.value)
    s, t = torch.randn(2, 4, 4, 4), torch.randn(2, 16, 4, 4)
    for name in ("fitnet", "vid", "dist_plus"):
        kw = {"logits_student": torch.randn(2, 10), "logits_teacher": torch.randn(2, 10)}
        kw = kw if name == "dist_plus" else {}
        with pytest.raises(ValueError, match="student_channels=4, teacher_channels=16"):
            create(name)(feat_student=s, feat_teacher=t, **kw)
    for name in ("fsp", "fsp_torchdistill", "kdsvd"):
        with pytest.raises(ValueError, match=r"student_channels=\[\.\.\.\]"):
            create(name)(feats_student=[s, s], feats_teacher=[t, t])
    for name in ("ofd", "mgd", "ab"):  # any loss that owns adapters, built without them
        args = (s, t) if name == "mgd" else ([s], [t])
        with pytest.raises(ValueError, match=r"student_channels=\.\.\., teacher_channels="):
            create(name)(*args)
    with pytest.raises(ValueError) as e:  # a loss that owns none gets no such hint
        create("at")([s], [t[:1]])
    assert "student_channels" not in str(e.value)


def test_views_feed_the_loss_every_view_and_the_label_loss_the_originals():
    from kdsurvey.losses._views import rotations

    x, y = _batch(3)
    views, original = rotations(x)
    assert views.shape == (12, 1, 8, 8) and original.tolist() == [0, 4, 8]
    assert torch.equal(views[4], x[1]) and torch.equal(views[5], torch.rot90(x[1], 1, (1, 2)))
    teacher, student = _pair()
    taps = ["stage3"]
    seen = {}
    d = Distiller(teacher, student, "sskd", student_taps=taps, teacher_taps=taps)
    d.setup(x, y)
    assert d.loss.head is not None  # the official student projection head, owned by the loss
    d.loss.register_forward_pre_hook(
        lambda _m, _a, kw: seen.update({k: v.shape for k, v in kw.items()}), with_kwargs=True
    )
    out = d(x, y)
    assert seen["logits_student"] == (12, 10) and seen["target"] == (3,)
    assert out.output.shape == (3, 10)
    direct = torch.nn.functional.cross_entropy(student(views)[original], y)  # same BN batch
    assert out.task_loss.item() == pytest.approx(direct.item(), rel=1e-5)
    plain = Distiller(teacher, student, "kd", views=rotations).setup(x, y)
    assert plain(x, y).output.shape == (3, 10)
