"""The loss manifest and the facts it is built from: one module per method, derived evidence,
one documented meaning per hyperparameter, documented inputs, and a committed file kept fresh."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

from kdsurvey.losses import manifest
from kdsurvey.losses.evidence import LEVELS
from kdsurvey.losses.registry import loss_modules

CASES = Path(__file__).parent / "fixtures" / "official_cases"


def test_load_names_and_entry_are_torch_free():
    code = (
        "import sys; from kdsurvey.losses import manifest; "
        "assert 'dkd' in manifest.names() and manifest.entry('dkd')['class'] == 'DKD'; "
        "assert manifest.entry('no_such_loss') is None; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_entry_has_a_known_evidence_level_and_reference_iff_cases():
    for loss in manifest.load()["losses"]:
        assert loss["evidence"] in LEVELS, loss["name"]
        has_cases = (CASES / f"{loss['name']}.json").is_file()
        assert (loss["evidence"] == "reference") == has_cases, loss["name"]
        assert (loss["reference"] is not None) == has_cases, loss["name"]


NAMES = sorted(manifest.names())  # the manifest's names: parametrising needs no torch


@pytest.fixture(scope="module")
def registry():
    """The loss registry, for the tests that import the losses (torch); the others run without."""
    require("torch", "the losses extra")
    from kdsurvey.losses import registry

    return registry


def test_committed_manifest_is_fresh(registry):
    diff = manifest.check()
    assert diff is None, f"run `kdsurvey losses manifest` (manifest.write()):\n{diff}"


def test_manifest_lists_every_registered_loss(registry):
    assert manifest.names() == set(registry.available())


@pytest.mark.parametrize("module", loss_modules())
def test_every_module_registers_a_loss(registry, module):
    mod = importlib.import_module(f"kdsurvey.losses.{module}")
    names = registry.available()
    assert any(registry.get(name).__module__ == mod.__name__ for name in names), module


def test_reference_losses_do_not_declare_evidence():
    """A loss with cases gets `reference` from its file; declaring evidence is a contradiction."""
    pattern = re.compile(r'@register\(\s*"(\w+)"[^)]*?evidence=', re.S)
    declared = {
        name
        for path in Path(manifest.PACKAGE).glob("*.py")
        for name in pattern.findall(path.read_text(encoding="utf-8"))
    }
    assert not declared & {p.stem for p in CASES.glob("*.json")}


def _other_names(params, name):
    return [p for p in params if p != name]


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_has_its_own_meaning(name):
    entry = manifest.entry(name)
    params = [h["name"] for h in entry["hyperparameters"]]
    for h in entry["hyperparameters"]:
        assert h["meaning"].strip(), f"{name}: {h['name']} has no meaning"
        for other in _other_names(params, h["name"]):
            # `other: ...` or `other (...)` inside a meaning is a neighbour's entry run together
            assert not re.search(rf"(?<![`\w]){other}\s*(:|\()", h["meaning"]), (
                f"{name}: the meaning of {h['name']} describes {other}: {h['meaning']!r}"
            )


def test_the_meaning_check_catches_entries_sharing_a_line():
    meaning = "TCKD weight (1.0). beta: NCKD weight (8.0)."
    assert re.search(r"(?<![`\w])beta\s*(:|\()", meaning)
    assert not re.search(r"(?<![`\w])beta\s*(:|\()", "weight, as ``beta`` (the NCKD one).")


@pytest.mark.parametrize("name", NAMES)
def test_every_input_is_documented_with_a_shape(registry, name):
    import inspect

    entry = manifest.entry(name)
    forward = list(inspect.signature(registry.get(name).forward).parameters)[1:]
    assert [i["name"] for i in entry["inputs"]] == forward
    for i in entry["inputs"]:
        assert i["meaning"], f"{name}: input {i['name']} has no meaning"
        if i["name"] not in ("classifier_teacher", "epoch"):
            assert i["shape"], f"{name}: input {i['name']} has no shape"


def test_entry_fields():
    dkd = manifest.entry("dkd")
    assert dkd["module"] == "kdsurvey/losses/dkd.py" and dkd["paper"] == "zhao2022decoupled"
    assert dkd["reference"]["repo"] == "megvii-research/mdistiller"
    assert dkd["reference"]["count"] >= 1 and dkd["math"] and not dkd["learned"]
    assert "Args:" not in dkd["description"] and ".. math::" not in dkd["description"]
    assert manifest.entry("fitnet")["learned"] and not manifest.entry("kd")["learned"]
    assert manifest.entry("icls")["evidence"] == "abstract"


def test_commands_read_the_manifest_and_the_default_cases(registry, capsys):
    from kdsurvey.cli import main

    assert main(["losses", "manifest", "--check"]) == 0
    assert main(["losses", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["evidence"] for r in rows} == {
        e["name"]: e["evidence"] for e in manifest.load()["losses"]
    }
    assert main(["losses", "verify"]) == 0  # defaults to tests/fixtures/official_cases
    assert capsys.readouterr().out.splitlines()[-1].endswith("passed, 0 failed")
