"""Language-model losses AKL, ABKD, TAID, DistiLLM-2, ULD and DSKD: what the reference cases do
not show by themselves (masking, limits that are known divergences, DistiLLM-2's shift, ULD across
vocabularies, TAID's schedule against the official trajectory, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require

torch = require("torch", "the losses extra")
F = torch.nn.functional

from kdsurvey.losses import create  # noqa: E402
from kdsurvey.losses.taid import TAIDSchedule  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SAME_VOCAB = ["akl", "abkd", "taid"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _tokens(b=3, t=5, v=9, seed=0, vt=None):
    g = _gen(seed)
    target = torch.randint(0, v, (b, t), generator=g)
    target[:, 0] = -100
    target[0, -2:] = -100
    return (
        torch.randn(b, t, v, generator=g, dtype=torch.float64),
        torch.randn(b, t, vt or v, generator=g, dtype=torch.float64) * 2,
        target,
    )


def _kl_rows(log_a, log_b):
    """KL(a || b) per row, from log-probabilities, with torch's own kl_div."""
    return F.kl_div(log_b, log_a, reduction="none", log_target=True).sum(-1)


def _token_mean(per_position, target):
    return per_position[target != -100].mean()


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("name", [*SAME_VOCAB, "uld"])
def test_ignored_positions_do_not_count(name):
    s, t, y = _tokens()
    loss = create(name)
    before = loss(s, t, y)
    s2, t2 = s.clone(), t.clone()
    s2[y == -100] = 50.0 * torch.randn_like(s2[y == -100])
    t2[y == -100] = -7.0
    assert loss(s2, t2, y).item() == pytest.approx(before.item(), rel=1e-12)


@pytest.mark.parametrize("name", SAME_VOCAB)
def test_token_mean_over_the_whole_batch(name):
    """Two sequences with 3 and 1 labelled positions: the value is the mean of the 4 positions,
    not the mean of the two sequence means."""
    s, t, y = _tokens(b=2, t=4)
    y[0] = torch.tensor([-100, 1, 2, 3])
    y[1] = torch.tensor([-100, -100, -100, 4])
    loss = create(name)
    per_position = torch.stack(
        [
            loss(s[b : b + 1, i : i + 1], t[b : b + 1, i : i + 1], y[b : b + 1, i : i + 1])
            for b, i in [(0, 1), (0, 2), (0, 3), (1, 3)]
        ]
    )
    assert loss(s, t, y).item() == pytest.approx(per_position.mean().item(), rel=1e-12)


# AKL's official weights read infinite logits as 0 (get_ratio), so there the masked entries still
# shape the weights: only its KLs leave them out.
@pytest.mark.parametrize("name", ["abkd", "taid"])
def test_vocabulary_masked_with_minus_inf_in_both_models_is_left_out(name):
    s, t, y = _tokens()
    keep = torch.arange(9) % 3 != 0
    masked_s, masked_t = s.clone(), t.clone()
    masked_s[..., ~keep] = -torch.inf
    masked_t[..., ~keep] = -torch.inf
    masked_s.requires_grad_(True)
    value = create(name)(masked_s, masked_t, y)
    value.backward()
    assert torch.isfinite(masked_s.grad).all()
    assert value.item() == pytest.approx(create(name)(s[..., keep], t[..., keep], y).item())


# --------------------------------------------------------------------------- known divergences


def test_abkd_limits_are_forward_and_reverse_kl():
    s, t, y = _tokens()
    log_q, log_p = F.log_softmax(s, -1), F.log_softmax(t, -1)
    forward = _token_mean(_kl_rows(log_p, log_q), y)
    reverse = _token_mean(_kl_rows(log_q, log_p), y)
    assert create("abkd", alpha=1.0, beta=0.0)(s, t, y).item() == pytest.approx(forward.item())
    assert create("abkd", alpha=0.0, beta=1.0)(s, t, y).item() == pytest.approx(reverse.item())
    half_square = _token_mean(0.5 * ((log_q - log_p) ** 2).sum(-1), y)
    assert create("abkd", alpha=0.0, beta=0.0)(s, t, y).item() == pytest.approx(half_square.item())


@pytest.mark.parametrize(
    ("branch", "near", "factor"),
    [
        ((0.0, 0.0), (1e-6, 2e-6), 1.0),
        ((0.0, 1.0), (1e-6, 1.0), 1.0),
        ((1.0, 0.0), (1.0, 1e-6), 1.0),
        ((0.0, 0.5), (1e-6, 0.5), 0.5),
        ((0.0, 2.0), (1e-6, 2.0), 2.0),
        ((0.7, 0.0), (0.7, 1e-6), 0.7),
        ((0.5, -0.5), (0.5, -0.5 + 1e-6), 0.5),
        ((2.0, -2.0), (2.0, -2.0 + 1e-6), 2.0),
    ],
)
def test_abkd_special_branches_are_the_official_multiples_of_the_limits(branch, near, factor):
    """As the docstring says: the official alpha = 0, beta = 0 and alpha + beta = 0 branches are
    beta, alpha and alpha times the limit of the general formula (equal only where that factor is
    1, i.e. at the forward and reverse KL); alpha = beta = 0 is the limit itself."""
    s, t, y = _tokens(seed=1)
    exact = create("abkd", alpha=branch[0], beta=branch[1])(s, t, y).item()
    limit = create("abkd", alpha=near[0], beta=near[1])(s, t, y).item()
    assert exact == pytest.approx(factor * limit, rel=1e-4)


def test_taid_at_t_1_is_forward_kl_and_cross_entropy_adds_the_teacher_entropy():
    s, t, y = _tokens()
    log_q, log_p = F.log_softmax(s, -1), F.log_softmax(t, -1)
    forward = _token_mean(_kl_rows(log_p, log_q), y)
    entropy = _token_mean(-(log_p.exp() * log_p).sum(-1), y)
    assert create("taid", t=1.0)(s, t, y).item() == pytest.approx(forward.item())
    assert create("taid", t=1.0, cross_entropy=True)(s, t, y).item() == pytest.approx(
        (forward + entropy).item()
    )


@pytest.mark.parametrize("t", [0.0, 0.4, 1.0])
def test_taid_kl_form_is_zero_when_student_equals_teacher(t):
    _, z, y = _tokens()
    assert create("taid", t=t, cross_entropy=False)(z.clone(), z, y).item() == pytest.approx(
        0.0, abs=1e-12
    )


def test_taid_at_t_0_targets_the_student_itself():
    s, t, y = _tokens()
    s.requires_grad_(True)
    value = create("taid", t=0.0, cross_entropy=False)(s, t, y)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-12)
    assert s.grad.abs().max().item() == pytest.approx(0.0, abs=1e-12)


def test_taid_interpolates_logits_not_probabilities():
    s, t, y = _tokens()
    mixed_logits = 0.3 * s + 0.7 * t
    log_q = F.log_softmax(s, -1)
    expected = _token_mean(-(F.softmax(mixed_logits, -1) * log_q).sum(-1), y)
    assert create("taid", t=0.7, cross_entropy=True)(s, t, y).item() == pytest.approx(
        expected.item()
    )


def test_akl_with_everything_in_the_head_is_forward_kl():
    s, t, y = _tokens()
    forward = _token_mean(_kl_rows(F.log_softmax(t, -1), F.log_softmax(s, -1)), y)
    assert create("akl", mu=2.0)(s, t, y).item() == pytest.approx(forward.item())


def test_akl_lies_between_forward_and_reverse_kl_per_token():
    s, t, y = _tokens(b=1, t=1)
    y[:] = 0
    log_q, log_p = F.log_softmax(s, -1), F.log_softmax(t, -1)
    kls = [_kl_rows(log_p, log_q).item(), _kl_rows(log_q, log_p).item()]
    value = create("akl")(s, t, y).item()
    assert min(kls) - 1e-12 <= value <= max(kls) + 1e-12


def test_akl_is_zero_not_nan_when_student_equals_teacher():
    _, t, y = _tokens()
    s = t.clone().requires_grad_(True)
    value = create("akl")(s, t, y)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-12) and torch.isfinite(s.grad).all()


# --------------------------------------------------------------------------- DistiLLM-2


def _distillm2_inputs(seed=0):
    chosen, rejected = _tokens(seed=seed), _tokens(seed=seed + 1)
    return {
        "logits_student": chosen[0],
        "logits_teacher": chosen[1],
        "target": chosen[2],
        "logits_student_rejected": rejected[0],
        "logits_teacher_rejected": rejected[1],
        "target_rejected": rejected[2],
    }


def _sequence_means(per_position, mask):
    return (per_position * mask).sum(-1) / mask.sum(-1)


def test_distillm2_shifts_labels_against_logits():
    """By hand: the logits at position i are scored where the label at i + 1 is not -100, each
    sequence averaged, then (2 - beta) chosen + beta rejected averaged over the batch."""
    x = _distillm2_inputs()
    a1, a2, beta = 0.2, 0.3, 1.25
    value = create("distillm2", alpha_1=a1, alpha_2=a2, beta=beta)(**x)

    def parts(s, t, y):
        log_q, log_p = F.log_softmax(s[:, :-1], -1), F.log_softmax(t[:, :-1], -1)
        return log_q, log_p, (y[:, 1:] != -100).double()

    log_q, log_p, mask = parts(x["logits_student"], x["logits_teacher"], x["target"])
    mix = torch.log(a1 * log_p.exp() + (1 - a1) * log_q.exp())
    chosen = _sequence_means(_kl_rows(log_p, mix), mask)
    log_q, log_p, mask = parts(
        x["logits_student_rejected"], x["logits_teacher_rejected"], x["target_rejected"]
    )
    mix = torch.log((1 - a2) * log_p.exp() + a2 * log_q.exp())
    rejected = _sequence_means(_kl_rows(log_q, mix), mask)
    expected = ((2 - beta) * chosen + beta * rejected).mean()
    assert value.item() == pytest.approx(expected.item())


def test_distillm2_ignores_the_last_position_and_the_first_label():
    x = _distillm2_inputs()
    loss = create("distillm2")
    before = loss(**x).item()
    for key in ("logits_student", "logits_teacher", "logits_student_rejected"):
        x[key][:, -1] = torch.randn_like(x[key][:, -1]) * 10
    x["target"][:, 0] = 3
    assert loss(**x).item() == pytest.approx(before, rel=1e-12)


def test_distillm2_is_zero_when_both_students_match_their_teachers():
    x = _distillm2_inputs()
    x["logits_student"] = x["logits_teacher"].clone()
    x["logits_student_rejected"] = x["logits_teacher_rejected"].clone()
    assert create("distillm2")(**x).item() == pytest.approx(0.0, abs=1e-12)


def test_distillm2_rejected_mixture_holds_the_student_constant():
    """Only the outer q of the skew reverse KL carries gradient: the same loss written with a
    live q inside the mixture has another gradient."""
    x = _distillm2_inputs()
    x["logits_student_rejected"].requires_grad_(True)
    create("distillm2", beta=2.0)(**x).backward()  # beta 2: the rejected term alone
    got = x["logits_student_rejected"].grad
    s = x["logits_student_rejected"].detach().clone().requires_grad_(True)
    log_q = F.log_softmax(s[:, :-1], -1)
    log_p = F.log_softmax(x["logits_teacher_rejected"][:, :-1], -1)
    mix = torch.log(0.9 * log_p.exp() + 0.1 * log_q.exp())
    mask = (x["target_rejected"][:, 1:] != -100).double()
    (2.0 * _sequence_means(_kl_rows(log_q, mix), mask).mean()).backward()
    assert not torch.allclose(got, s.grad)


# --------------------------------------------------------------------------- ULD


def test_uld_compares_vocabularies_of_different_sizes_by_sorted_probabilities():
    """A student whose vocabulary is the teacher's shuffled plus tokens of zero probability has
    the teacher's sorted probabilities: ULD is 0 although V_s != V_t."""
    _, t, y = _tokens(v=7)
    extra = torch.full((*t.shape[:2], 4), -torch.inf, dtype=t.dtype)
    s = torch.cat([t[..., torch.randperm(7, generator=_gen(3))], extra], dim=-1)
    assert s.shape[-1] == 11 and t.shape[-1] == 7
    assert create("uld")(s, t, y).item() == pytest.approx(0.0, abs=1e-12)


def test_uld_pairs_answer_tokens_of_two_tokenizations():
    """The k-th answer token of the student meets the k-th of the teacher, wherever each sits:
    moving the teacher's answer one position later changes nothing."""
    s, t, y = _tokens(b=2, t=6, v=9, vt=13)
    y[:] = -100
    y[:, 1:4] = 1
    t_late = torch.cat([torch.randn(2, 1, 13, dtype=t.dtype), t], dim=1)
    y_late = torch.cat([torch.full((2, 1), -100), y], dim=1)
    loss = create("uld")
    assert loss(s, t_late, y, target_teacher=y_late).item() == pytest.approx(
        loss(s, t, y).item(), rel=1e-12
    )


def test_uld_value_by_hand():
    s, t, y = _tokens(b=1, t=4, v=5, vt=3)
    y[:] = torch.tensor([[-100, 2, 0, -100]])
    value = create("uld", skip_student_eos=False, loss_weight=1.0)(s, t, y)
    rows = []
    for i in (1, 2):
        ps = F.softmax(s[0, i], -1).sort(descending=True).values
        pt = F.pad(F.softmax(t[0, i], -1).sort(descending=True).values, (0, 2))
        rows.append((ps - pt).abs().sum())
    assert value.item() == pytest.approx(torch.stack(rows).mean().item())
    # the authors' default leaves out the student's last answer token
    assert create("uld", loss_weight=1.0)(s, t, y).item() == pytest.approx(rows[0].item())


# --------------------------------------------------------------------------- DSKD


def test_dskd_owns_two_projectors_that_learn():
    torch.manual_seed(0)
    loss = create("dskd", student_channels=4, teacher_channels=6).double()
    s, t, y = _tokens(v=9)
    g = _gen(5)
    feats = {
        "feat_student": torch.randn(3, 5, 4, generator=g, dtype=torch.float64),
        "feat_teacher": torch.randn(3, 5, 6, generator=g, dtype=torch.float64),
        "lm_head_student": torch.randn(9, 4, generator=g, dtype=torch.float64),
        "lm_head_teacher": torch.randn(9, 6, generator=g, dtype=torch.float64),
    }
    loss(s, t, y, **feats).backward()
    assert {n for n, p in loss.named_parameters()} == {
        "t2s.weight",
        "t2s.bias",
        "s2t.weight",
        "s2t.bias",
    }
    # t2s learns from the cross-entropy of the projected teacher, s2t from the teacher-space KL
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())


def _cma_inputs(ds=5, dt=5, seed=5):
    from kdsurvey.losses import get

    x = get("dskd_cma").example_inputs(batch=3, dtype=torch.float64, generator=_gen(seed))
    g = _gen(seed + 1)
    for key, width in (("feat_student", ds), ("embed_student", ds), ("lm_head_student", ds)):
        x[key] = torch.randn(*x[key].shape[:-1], width, generator=g, dtype=torch.float64)
    for key, width in (("feat_teacher", dt), ("embed_teacher", dt), ("lm_head_teacher", dt)):
        x[key] = torch.randn(*x[key].shape[:-1], width, generator=g, dtype=torch.float64)
    return x


def test_dskd_cma_owns_three_projectors_that_learn_across_vocabularies():
    torch.manual_seed(0)
    loss = create("dskd_cma", student_channels=4, teacher_channels=6).double()
    x = _cma_inputs(ds=4, dt=6)
    assert x["logits_student"].shape[1:] != x["logits_teacher"].shape[1:]  # T and V differ
    loss(**x).backward()
    names = {n.split(".")[0] for n, _ in loss.named_parameters()}
    assert names == {"query", "s2t", "t2s"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())


def test_dskd_cma_ignores_logits_at_unlabelled_positions():
    x = _cma_inputs()
    loss = create("dskd_cma")
    before = loss(**x).item()
    x["logits_student"][x["target"] == -100] = 30.0
    x["logits_teacher"][x["target_teacher"] == -100] = -30.0
    assert loss(**x).item() == pytest.approx(before, rel=1e-12)


@pytest.mark.parametrize("name", ["dskd", "dskd_cma"])
def test_dskd_refuses_states_that_do_not_fit_its_projectors(name):
    x = _cma_inputs(ds=4, dt=6)
    if name == "dskd":
        x = {k: x[k] for k in ("logits_student", "target", "feat_student", "lm_head_student")}
        x["logits_teacher"] = torch.randn_like(x["logits_student"])
        x["feat_teacher"] = torch.randn(*x["feat_student"].shape[:2], 6, dtype=torch.float64)
        x["lm_head_teacher"] = torch.randn(x["logits_student"].shape[-1], 4, dtype=torch.float64)
    loss = create(name, student_channels=3, teacher_channels=6)
    with pytest.raises(ValueError, match=r"\(3, 6\)"):
        loss.double()(**x)
    if name == "dskd_cma":
        with pytest.raises(ValueError, match="widths must be equal"):
            create(name)(**x)


# --------------------------------------------------------------------------- TAID schedule


def test_taid_schedule_reproduces_the_official_update():
    recorded = json.loads((FIXTURES / "taid_schedule.json").read_text(encoding="utf-8"))
    assert len(recorded["runs"]) == 4
    for run in recorded["runs"]:
        schedule = TAIDSchedule(**run["kwargs"])
        n = run["num_train_steps"]
        got = [schedule.update(loss, i, n) for i, loss in enumerate(run["losses"])]
        # the official buffers are float32
        assert got == pytest.approx(run["t"], abs=1e-6)


def test_taid_schedule_is_monotone_and_capped():
    schedule = TAIDSchedule(t_start=0.1, t_end=0.8, alpha=0.5)
    ts = [schedule.update(1.0 / (i + 1), i, 10) for i in range(10)]
    assert ts == sorted(ts) and ts[-1] == 0.8 and ts[0] == 0.1


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", [*SAME_VOCAB, "uld"])
def test_a_target_of_the_wrong_shape_is_a_value_error_naming_it(name):
    s, t, y = _tokens()
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        create(name)(s, t, y[:, :4])


def test_same_vocabulary_losses_refuse_two_vocabularies():
    s, t, y = _tokens(vt=12)
    for name in SAME_VOCAB:
        with pytest.raises(ValueError, match=r"\(3, 5, 12\)"):
            create(name)(s, t, y)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("distillm2", {"alpha_1": 0.0}, "alpha_1"),
        ("distillm2", {"alpha_2": 1.0}, "alpha_2"),
        ("taid", {"t": 1.5}, "t must lie"),
        ("dskd", {"kd_objective": "js_divergence"}, "kd_objective"),
        ("dskd", {"student_channels": 4}, "both"),
    ],
)
def test_bad_hyperparameters_are_refused(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create(name, **kwargs)


def test_distillm2_refuses_chosen_and_rejected_batches_of_different_sizes():
    x = _distillm2_inputs()
    for key in ("logits_student_rejected", "logits_teacher_rejected", "target_rejected"):
        x[key] = x[key][:2]
    with pytest.raises(ValueError, match=r"\(2, 5, 9\)"):
        create("distillm2")(**x)


def test_uld_refuses_teacher_labels_that_do_not_fit_its_logits():
    s, t, y = _tokens(vt=13)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        create("uld")(s, t, y, target_teacher=y[:, :4])


def test_dskd_refuses_a_head_that_does_not_fit():
    s, t, y = _tokens(v=9)
    feats = {
        "feat_student": torch.randn(3, 5, 4, dtype=torch.float64),
        "feat_teacher": torch.randn(3, 5, 4, dtype=torch.float64),
        "lm_head_student": torch.randn(9, 4, dtype=torch.float64),
        "lm_head_teacher": torch.randn(9, 6, dtype=torch.float64),
    }
    with pytest.raises(ValueError, match=r"lm_head_teacher \(9, 6\)"):
        create("dskd")(s, t, y, **feats)


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("name", [*SAME_VOCAB, "distillm2", "uld"])
def test_chunked_evaluation_gives_the_same_value_and_gradient(name):
    if name == "distillm2":
        x = _distillm2_inputs()
    else:
        vt = 13 if name == "uld" else None
        names = ("logits_student", "logits_teacher", "target")
        x = dict(zip(names, _tokens(vt=vt), strict=True))
    results = []
    for chunk_size in (None, 4):
        inputs = {k: v.clone() for k, v in x.items()}
        students = [v.requires_grad_(True) for k, v in inputs.items() if "student" in k]
        value = create(name, chunk_size=chunk_size)(**inputs)
        value.backward()
        results.append((value.detach(), [s.grad for s in students]))
    (plain, plain_grads), (chunked, chunked_grads) = results
    assert chunked.item() == pytest.approx(plain.item(), rel=1e-12)
    for a, b in zip(plain_grads, chunked_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("name", ["akl", "abkd", "taid", "distillm2", "uld", "dskd", "dskd_cma"])
def test_bfloat16_inputs_are_computed_in_float32(name):
    from kdsurvey.losses import get

    x = get(name).example_inputs(batch=3, dtype=torch.float64, generator=_gen(7))
    low = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in x.items()}
    # the float64 reference sees the same (rounded) numbers
    exact = {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in low.items()}
    torch.manual_seed(0)
    value = create(name)(**low)
    torch.manual_seed(0)
    reference = create(name).double()(**exact)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-5)
