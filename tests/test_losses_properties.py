"""Properties every registered loss must have, parametrised over the registry so a new loss is
tested the day it is added."""

from __future__ import annotations

import pytest
from conftest import require

torch = require("torch", "the losses extra")

from kdsurvey.losses import available, create, get  # noqa: E402

NAMES = available()


def _inputs(name, dtype=torch.float64, seed=0, batch=4):
    gen = torch.Generator().manual_seed(seed)
    return get(name).example_inputs(batch=batch, dtype=dtype, generator=gen)


def _tensors(value):
    """The tensors held by one forward kwarg (a tensor or a list of tensors)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def _float_inputs(kwargs, role):
    return [
        t
        for k, v in kwargs.items()
        if k.endswith(f"_{role}")
        for t in _tensors(v)
        if t.is_floating_point()
    ]


def _seeded_loss(name):
    torch.manual_seed(0)  # learnable adapters start from the same weights in every call
    return create(name, **get(name).example_kwargs())  # the sizes its example inputs need


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="dkd"):
        get("dkdd")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_value_and_gradients(name, dtype):
    kwargs = _inputs(name, dtype)
    students = _float_inputs(kwargs, "student")
    for t in students:
        t.requires_grad_(True)
    loss = _seeded_loss(name).to(dtype)
    value = loss(**kwargs)
    assert value.shape == () and value.dtype == dtype
    assert torch.isfinite(value)
    value.backward()
    grads = [t.grad for t in students]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), (
        "no gradient reaches the student"
    )
    for g in grads:
        if g is not None:
            assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", NAMES)
def test_no_gradient_into_teacher(name):
    kwargs = _inputs(name)
    teachers = _float_inputs(kwargs, "teacher")
    for t in _float_inputs(kwargs, "student") + teachers:
        t.requires_grad_(True)
    _seeded_loss(name).double()(**kwargs).backward()
    for t in teachers:
        assert t.grad is None or t.grad.abs().sum() == 0


@pytest.mark.parametrize("name", [n for n in NAMES if get(n).zero_at_match])
def test_minimum_when_student_equals_teacher(name):
    kwargs = _inputs(name)
    for key in [k for k in kwargs if k.endswith("_student")]:
        teacher = kwargs[key.replace("_student", "_teacher")]
        kwargs[key] = [t.clone() for t in teacher] if isinstance(teacher, list) else teacher.clone()
    loss = _seeded_loss(name).double()
    # the tolerance is for the unweighted term: the authors' weight (up to 30000) scales it
    value = loss(**kwargs) / getattr(loss, "loss_weight", 1.0)
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if get(n).batch_invariant])
def test_invariant_to_batch_order(name):
    kwargs = _inputs(name, batch=6)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(1))

    def permute(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 6:
            return value[perm]
        if isinstance(value, list):
            return [permute(v) for v in value]
        return value

    before = _seeded_loss(name).double()(**kwargs)
    after = _seeded_loss(name).double()(**{k: permute(v) for k, v in kwargs.items()})
    assert after.item() == pytest.approx(before.item(), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes_raise_value_error_naming_both(name):
    kwargs = _inputs(name)
    key = next(k for k in kwargs if k.endswith("_student"))
    value = kwargs[key]
    first = value[0] if isinstance(value, list) else value
    wrong = torch.randn(first.shape[0] + 1, *first.shape[1:], dtype=first.dtype)
    kwargs[key] = [wrong, *value[1:]] if isinstance(value, list) else wrong
    with pytest.raises(ValueError) as err:
        _seeded_loss(name).double()(**kwargs)
    message = str(err.value)
    assert str(tuple(wrong.shape)) in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda(name):
    kwargs = _inputs(name, torch.float32)
    moved = {
        k: [t.cuda() for t in v]
        if isinstance(v, list)
        else v.cuda()
        if isinstance(v, torch.Tensor)
        else v
        for k, v in kwargs.items()
    }
    for t in _float_inputs(moved, "student"):
        t.requires_grad_(True)
    value = _seeded_loss(name).cuda()(**moved)
    value.backward()
    assert value.is_cuda and torch.isfinite(value)


def test_every_loss_cites_a_catalogue_paper():
    from conftest import PAPERS

    from kdsurvey.records.catalogue import load

    papers = {p.id: p for p in load(PAPERS).papers}
    for name in NAMES:
        cls = get(name)
        assert cls.paper in papers, f"{name}: no record {cls.paper}"
        assert name in papers[cls.paper].loss, f"{cls.paper} does not list its loss {name}"
        assert cls.__doc__ and cls.paper in cls.__doc__, f"{name}: docstring must cite {cls.paper}"
