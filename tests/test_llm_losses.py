"""Token-level language-model losses: masking, chunked evaluation, top-k teachers, vocabulary
masking and input errors (the official values themselves are the stored reference cases)."""

from __future__ import annotations

import pytest
from conftest import require

torch = require("torch", "the losses extra")

from kdsurvey.losses import create  # noqa: E402
from kdsurvey.losses._tokens import (  # noqa: E402
    IGNORE_INDEX,
    REDUCTIONS,
    position_mask,
    position_weights,
    token_loss,
)

NAMES = [
    "gkd_jsd",
    "llm_forward_kl",
    "llm_reverse_kl",
    "llm_symmetric_kl",
    "llm_js",
    "llm_tvd",
    "distillm_skew_fkl",
    "distillm_skew_rkl",
    "minillm_rkl",
    "torchtune_fkl",
    "torchtune_rkl",
    "torchtune_symkl",
    "distillkit_kl",
    "distillkit_jsd",
    "distillkit_tvd",
]
# Losses whose forward (teacher-weighted) KL accepts a top-k teacher, with kwargs to try.
TOPK = [
    ("llm_forward_kl", {}),
    ("llm_forward_kl", {"cross_entropy": False}),
    ("torchtune_fkl", {}),
    ("distillkit_kl", {"temperature": 2.0}),
]


def _inputs(seed=0, b=3, t=7, v=19, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(b, t, v, generator=gen, dtype=dtype) * 1.5
    te = torch.randn(b, t, v, generator=gen, dtype=dtype) * 2
    target = torch.randint(0, v, (b, t), generator=gen)
    target[:, :2] = IGNORE_INDEX
    target[-1, 4:] = IGNORE_INDEX
    return s, te, target


def _value_and_grad(loss, s, t, target, **extra):
    s = s.detach().clone().requires_grad_(True)
    value = loss(s, t, target, **extra)
    value.backward()
    return value.detach(), s.grad


@pytest.mark.parametrize("name", NAMES)
def test_ignored_positions_change_nothing(name):
    s, t, target = _inputs()
    loss = create(name)
    value, grad = _value_and_grad(loss, s, t, target)
    ignored = target == IGNORE_INDEX
    s2, t2 = s.clone(), t.clone()
    s2[ignored] = torch.randn_like(s2[ignored]) * 9
    t2[ignored] = torch.randn_like(t2[ignored]) * 9
    value2, grad2 = _value_and_grad(loss, s2, t2, target)
    assert value2.item() == pytest.approx(value.item(), rel=1e-12)
    assert torch.equal(grad[ignored], torch.zeros_like(grad[ignored]))
    torch.testing.assert_close(grad2, grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk_size", [1, 4, 5, 100])
def test_chunked_equals_plain_in_value_and_gradient(name, chunk_size):
    s, t, target = _inputs(seed=1)
    target[0] = IGNORE_INDEX  # a chunk with no counted position, and chunks mostly ignored
    target[1, 1:] = IGNORE_INDEX
    value, grad = _value_and_grad(create(name), s, t, target)
    value_c, grad_c = _value_and_grad(create(name, chunk_size=chunk_size), s, t, target)
    assert value_c.item() == pytest.approx(value.item(), rel=1e-12)
    torch.testing.assert_close(grad_c, grad, rtol=1e-10, atol=1e-14)


def test_chunked_gradient_is_scaled_by_the_incoming_gradient():
    s, t, target = _inputs(seed=2)
    _, grad = _value_and_grad(create("llm_js"), s, t, target)
    x = s.clone().requires_grad_(True)
    (3.0 * create("llm_js", chunk_size=4)(x, t, target)).backward()
    torch.testing.assert_close(x.grad, 3.0 * grad)


def test_chunked_evaluation_without_student_gradient_gives_the_value():
    s, t, target = _inputs(seed=3)
    with torch.no_grad():
        plain = create("llm_reverse_kl")(s, t, target)
        chunked = create("llm_reverse_kl", chunk_size=3)(s, t, target)
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-12)


@pytest.mark.parametrize(("name", "kwargs"), TOPK)
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_top_k_teacher_with_k_equal_v_is_the_dense_loss(name, kwargs, chunk_size):
    s, t, target = _inputs(seed=4)
    values, indices = t.topk(t.shape[-1], dim=-1)  # every token, in another order
    loss = create(name, chunk_size=chunk_size, **kwargs)
    dense, grad = _value_and_grad(loss, s, t, target)
    sparse, grad_k = _value_and_grad(loss, s, values, target, teacher_topk_indices=indices)
    assert sparse.item() == pytest.approx(dense.item(), rel=1e-12)
    torch.testing.assert_close(grad_k, grad)


def test_top_k_teacher_renormalises_the_kept_tokens():
    s, t, target = _inputs(seed=5)
    values, indices = t.topk(5, dim=-1)
    got = create("llm_forward_kl", cross_entropy=False)(s, values, target, indices)
    p = torch.softmax(values, -1)
    log_q = torch.log_softmax(s, -1).gather(-1, indices)
    per_position = (p * (p.log() - log_q)).sum(-1)
    want = per_position[target != IGNORE_INDEX].mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_vocabulary_masked_with_minus_inf_is_the_loss_on_the_other_tokens(name, chunk_size):
    s, t, target = _inputs(seed=6)
    masked = [3, 11]
    keep = [v for v in range(s.shape[-1]) if v not in masked]
    s_inf, t_inf = s.clone(), t.clone()
    s_inf[..., masked] = float("-inf")
    t_inf[..., masked] = float("-inf")
    loss = create(name, chunk_size=chunk_size)
    value, grad = _value_and_grad(loss, s_inf, t_inf, target)
    want, want_grad = _value_and_grad(loss, s[..., keep], t[..., keep], target)
    assert torch.isfinite(grad).all()
    assert value.item() == pytest.approx(want.item(), rel=1e-10)
    torch.testing.assert_close(grad[..., keep], want_grad)
    assert torch.equal(grad[..., masked], torch.zeros_like(grad[..., masked]))


@pytest.mark.parametrize("name", NAMES)
def test_no_counted_position_gives_zero(name):
    s, t, target = _inputs(seed=7)
    value, grad = _value_and_grad(create(name), s, t, torch.full_like(target, IGNORE_INDEX))
    assert value.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", ["llm_forward_kl", "distillm_skew_fkl", "llm_symmetric_kl"])
def test_cross_entropy_switch_differs_by_the_teacher_entropy_at_a_match(name):
    _, t, target = _inputs(seed=8)
    kl = create(name, cross_entropy=False)(t.clone(), t, target)
    ce = create(name)(t.clone(), t, target)
    log_p = torch.log_softmax(t, -1)
    entropy = -(log_p.exp() * log_p).sum(-1)[target != IGNORE_INDEX].mean()
    weight = 1 - create(name).lam if name == "llm_symmetric_kl" else 1.0
    assert kl.item() == pytest.approx(0.0, abs=1e-12)
    assert ce.item() == pytest.approx(weight * entropy.item(), rel=1e-10)


def test_gkd_beta_ends_are_plain_kl_while_the_formula_tends_to_zero():
    s, t, target = _inputs(seed=9)
    forward = create("gkd_jsd", beta=0.0)(s, t, target).item()
    near_zero = create("gkd_jsd", beta=1e-9)(s, t, target).item()
    near_one = create("gkd_jsd", beta=1 - 1e-9)(s, t, target).item()
    assert forward == pytest.approx(create("distillkit_kl", loss_weight=1.0)(s, t, target).item())
    assert forward > 0.1 and near_zero < 1e-6 and near_one < 1e-6


def test_reductions_by_hand():
    s, t, target = _inputs(seed=10)
    per_position = torch.rand(s.shape[:2], dtype=torch.float64)
    mask = position_mask(target, s.shape)
    n = mask.sum(1, keepdim=True).to(per_position.dtype)
    want = {
        "token_mean": per_position[mask].mean(),
        "sequence_mean": ((per_position * mask).sum(1, keepdim=True) / n).mean(),
        "batch_sum": per_position[mask].sum() / s.shape[0],
    }
    for reduction in REDUCTIONS:
        w = position_weights(mask, reduction, torch.float64)
        assert (w * per_position).sum().item() == pytest.approx(want[reduction].item(), rel=1e-12)

        def rows(a, b, values):
            return values[:, 0] + 0 * a.sum(-1)

        for chunk in (None, 2):
            got = token_loss(rows, s, [t, per_position[..., None]], w, chunk)
            assert got.item() == pytest.approx(want[reduction].item(), rel=1e-12)


def test_errors_name_the_shapes_and_come_all_at_once():
    s, t, target = _inputs()
    loss = create("llm_forward_kl")
    with pytest.raises(ValueError) as err:
        loss(s, t[:, :3], target[:, :3].int())
    message = str(err.value)
    assert "(3, 7, 19)" in message and "(3, 3, 19)" in message
    assert "target (3, 3)" in message and "int64" in message
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        loss(s[0], t[0], target[0])
    with pytest.raises(ValueError, match=r"in \[0, 19\)"):
        loss(s, t[..., :2], target, torch.full((3, 7, 2), 19))
    with pytest.raises(TypeError, match="teacher_topk_indices"):  # forward-KL losses only
        create("llm_reverse_kl")(s, t[..., :2], target, teacher_topk_indices=target[..., None])
    with pytest.raises(ValueError, match="chunk_size"):
        create("llm_tvd", chunk_size=0)(s, t, target)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("gkd_jsd", {"beta": 1.5}, "beta"),
        ("gkd_jsd", {"reduction": "none"}, "reduction"),
        ("torchtune_symkl", {"sym_kd_ratio": -0.1}, "sym_kd_ratio"),
    ],
)
def test_invalid_hyperparameters_are_refused(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create(name, **kwargs)


def test_presets_give_the_authors_settings_with_a_source():
    for name in NAMES:
        presets = create(name).presets
        assert presets, name
        default = next(iter(presets.values()))
        assert default.kwargs == {} and "@" in default.source, name
    assert create("torchtune_fkl").loss_weight == 0.5
    assert create("torchtune_fkl").preset().task_weight == 0.5
    assert create("llm_forward_kl").preset().task_weight == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_logits_are_computed_in_float32(name):
    s, t, target = _inputs(seed=11)
    s, t = s.to(torch.bfloat16), t.to(torch.bfloat16)
    want = create(name)(s.double(), t.double(), target)  # the same numbers in float64
    x = s.clone().requires_grad_(True)
    got = create(name, chunk_size=4)(x, t, target)
    got.backward()
    assert got.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
