"""The proof: every reference case from the official implementations passes, and every `spec/`
case (numbers withheld) is accepted with a finite loss and gradient."""

from __future__ import annotations

import json
import os

import pytest
from conftest import REFERENCE, assert_case_file_passes

torch = pytest.importorskip("torch", reason="the losses extra (torch) is not installed")

from kdsurvey.cli import main  # noqa: E402
from kdsurvey.losses import create  # noqa: E402
from kdsurvey.losses.verify import build_args  # noqa: E402

if not REFERENCE.is_dir():
    # Under CI the cases must be there (.ci/run has ../shared), unless a workflow without them
    # says so explicitly.
    if os.environ.get("CI") and not os.environ.get("KDSURVEY_REFERENCE_OPTIONAL"):
        raise RuntimeError(f"reference cases not found at {REFERENCE} (set KDSURVEY_REFERENCE)")
    pytest.skip(
        f"reference cases not found at {REFERENCE} (set KDSURVEY_REFERENCE)",
        allow_module_level=True,
    )

CASES = sorted((REFERENCE / "cases").glob("*.json"))
SPECS = sorted((REFERENCE / "spec").glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_reference_cases_pass(path):
    assert_case_file_passes(path)


def _fill(value, generator, high):
    """Random data for a spec tensor (the spec keeps shapes and dtypes, not numbers)."""
    if isinstance(value, list):
        return [_fill(v, generator, high) for v in value]
    if not (isinstance(value, dict) and "shape" in value):
        return value
    shape = value["shape"]
    if value["dtype"] == "int64":
        data = torch.randint(0, high, shape, generator=generator)
    else:
        data = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
    return {"shape": shape, "dtype": value["dtype"], "data": data.flatten().tolist()}


def _spec_cases():
    for path in SPECS:
        spec = json.loads(path.read_text())
        for case in spec["cases"]:
            yield pytest.param(spec, case, id=f"{spec['method']}-{case['name']}")


@pytest.mark.parametrize(("spec", "case"), list(_spec_cases()))
def test_spec_cases_accepted_with_finite_loss_and_gradient(spec, case):
    gen = torch.Generator().manual_seed(0)
    args = case["args"]
    classes = case["kwargs"].get("num_classes") or (
        args["logits_student"]["shape"][1] if "logits_student" in args else 2
    )
    filled = {k: _fill(v, gen, classes) for k, v in args.items()}
    if "class_prior" in filled:  # a prior is a distribution over classes
        prior = torch.rand(filled["class_prior"]["shape"], generator=gen, dtype=torch.float64)
        filled["class_prior"]["data"] = (prior / prior.sum(-1, keepdim=True)).flatten().tolist()
    if "margins" in filled:  # OFD margins are E[x | x < 0]: negative
        for m in filled["margins"]:
            m["data"] = [-abs(x) for x in m["data"]]
    loss = create(spec["method"], **case["kwargs"])
    kwargs, students = build_args(spec["inputs"], filled)
    value = loss(**kwargs)
    assert value.shape == () and torch.isfinite(value)
    value.backward()
    for tensors in students.values():
        for t in tensors if isinstance(tensors, list) else [tensors]:
            assert t.grad is None or torch.isfinite(t.grad).all()


def test_verify_command_prints_table_and_passes(capsys):
    assert main(["losses", "verify", str(REFERENCE / "cases")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["method", "case"]
    assert out.rstrip().endswith(
        f"{sum(len(json.loads(p.read_text())['cases']) for p in CASES)} passed, 0 failed"
    )


def test_verify_command_fails_on_wrong_numbers_and_unknown_methods(tmp_path, capsys):
    spec = json.loads((REFERENCE / "cases" / "kd.json").read_text())
    spec["cases"][0]["expected"]["loss"] += 1e-3
    (tmp_path / "kd.json").write_text(json.dumps(spec))
    unknown = dict(spec, method="no_such_loss")
    (tmp_path / "zz.json").write_text(json.dumps(unknown))
    assert main(["losses", "verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "unknown loss 'no_such_loss'" in out
    assert out.rstrip().endswith(
        f"{len(spec['cases']) - 1} passed, {len(spec['cases']) + 1} failed"
    )
