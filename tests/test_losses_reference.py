"""`kdsurvey losses verify`: replays the stored cases (tests/fixtures/official_cases) and fails
on wrong numbers or unknown methods. The cases themselves are run by test_losses_numbers.py."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import require

torch = require("torch", "the losses extra")

from kdsurvey.cli import main  # noqa: E402
from kdsurvey.losses.verify import DEFAULT_CASES, run_dir  # noqa: E402

CASES = Path(__file__).parent / "fixtures" / "official_cases"


def test_verify_defaults_to_the_stored_cases():
    assert DEFAULT_CASES.resolve() == CASES.resolve()
    results = run_dir()
    assert results and all(r.passed for r in results)


def test_verify_command_prints_table_and_passes(capsys):
    assert main(["losses", "verify", str(CASES)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["method", "case"]
    total = sum(len(json.loads(p.read_text())["cases"]) for p in CASES.glob("*.json"))
    assert out.rstrip().endswith(f"{total} passed, 0 failed")


def test_verify_command_fails_on_wrong_numbers_and_unknown_methods(tmp_path, capsys):
    spec = json.loads((CASES / "kd.json").read_text())
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
