"""Every row of kdsurvey/losses/conventions.yaml holds: both forms run on the same inputs and
their values stand in the stated relation. The site and README print these rows."""

from __future__ import annotations

import pytest
from conftest import require

torch = require("torch", "the losses extra")

from kdsurvey.losses import create  # noqa: E402
from kdsurvey.losses.conventions import evaluate, load  # noqa: E402

ROWS = load()


def _inputs(seed=0, b=3, t=5, v=13):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(b, t, v, generator=gen, dtype=torch.float64) * 1.5
    te = torch.randn(b, t, v, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, v, (b, t), generator=gen)
    target[:, :2] = -100
    target[-1, 3:] = -100
    return s, te, target


def _value(form, s, t, target):
    return create(form.loss, **form.kwargs)(s, t, target if form.target else None).item()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.topic}:{r.a.label()}" for r in ROWS])
@pytest.mark.parametrize("seed", [0, 1])
def test_convention_holds_on_the_same_inputs(row, seed):
    s, t, target = _inputs(seed)
    mask = target != -100 if row.a.target else torch.ones_like(target, dtype=torch.bool)
    temperature = row.a.kwargs.get("temperature", 1.0)
    log_p = torch.log_softmax(t / temperature, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    numbers = {
        "b": _value(row.b, s, t, target),
        "H": entropy[mask].mean().item(),
        "N": mask.sum().item(),
        "B": s.shape[0],
        "V": s.shape[-1],
        "T": temperature,
    }
    assert _value(row.a, s, t, target) == pytest.approx(evaluate(row.relation, numbers), rel=1e-9)


def test_a_wrong_relation_fails_the_check():
    # the check can fail: swapping the two sides of the cross-entropy row breaks it
    row = next(r for r in ROWS if r.relation == "b + H")
    s, t, target = _inputs()
    a, b = _value(row.a, s, t, target), _value(row.b, s, t, target)
    assert a != pytest.approx(b, rel=1e-6)


def test_relations_allow_only_arithmetic_on_the_named_numbers():
    assert evaluate("T**2 * b + (H - 1) / 2", {"T": 2, "b": 3, "H": 5}) == 14
    for bad in ["__import__('os')", "b.real", "x + 1", "b +"]:
        with pytest.raises(ValueError, match="relation"):
            evaluate(bad, {"b": 1.0})


def test_load_lists_every_problem_with_its_row(tmp_path):
    path = tmp_path / "conventions.yaml"
    path.write_text(
        "- {topic: vibes, claim: x, a: {loss: kd}, b: {loss: kd}, relation: b}\n"
        "- {topic: value, claim: x, a: {loss: kd}, b: {loss: kd}, relation: 'b +'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as err:
        load(path)
    assert "row 1: topic" in str(err.value) and "row 2: relation" in str(err.value)


def test_site_page_and_readme_print_every_row():
    from conftest import ROOT

    from kdsurvey.exporters import readme, site
    from kdsurvey.records.catalogue import load as load_catalogue

    catalogue = load_catalogue(ROOT / "papers")
    page = site.render_pages(catalogue, site.Links("https://github.com/o/r"))["conventions.md"]
    text = readme.render(catalogue)
    assert "edit/main/kdsurvey/losses/conventions.yaml" in page
    for row in ROWS:
        for out in (page, text):
            assert f"`{row.a.label()}`" in out and f"`{row.b.label()}`" in out
            assert f"`{row.relation}`" in out
    assert "conventions.md" in (ROOT / "kdsurvey" / "website" / "mkdocs.yml").read_text()
