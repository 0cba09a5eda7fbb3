"""Shared fixtures: small catalogues written into temporary folders."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPERS = ROOT / "papers"

GOOD = """\
# yaml-language-server: $schema=schema.json
id: hinton2015distilling
title: Distilling the Knowledge in a Neural Network
authors:
  - Hinton, Geoffrey
  - Vinyals, Oriol
  - Dean, Jeff
year: 2015
venue: arxiv
category: logit
tasks: [classification]
links:
  paper: https://arxiv.org/abs/1503.02531
  arxiv: "1503.02531"
loss: kd
summary: The student matches the teacher's softened class probabilities.
"""


def require(module: str, why: str = "pip install .[test]"):
    """The module, or a skip outside CI; under CI a missing one is an error (``.ci/run`` installs
    the extras), so no test skips itself into green there."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed ({why})")


@pytest.fixture
def catalogue_dir(tmp_path: Path) -> Path:
    """A valid one-record catalogue with the real venues and categories."""
    papers = tmp_path / "papers"
    papers.mkdir()
    for name in ("venues.yaml", "categories.yaml", "tasks.yaml"):
        shutil.copy(PAPERS / name, papers / name)
    (papers / "hinton2015distilling.yaml").write_text(GOOD, encoding="utf-8")
    return papers


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a throwaway identity (for --changed-since tests); its stdout."""
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def assert_case_file_passes(path: Path) -> None:
    """Every case of a reference case file matches its loss and gradients (imports torch)."""
    from kdsurvey.losses.verify import run_file

    results = run_file(path)
    assert results
    failures = [
        f"{r.case}: loss {r.loss_diff:.3g} grad {r.grad_diff:.3g} {r.error}"
        for r in results
        if not r.passed
    ]
    assert not failures, failures
