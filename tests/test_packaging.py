"""What ``pip install -e ".[losses,test]"`` brings: the extras of pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML itself")

ROOT = Path(__file__).resolve().parents[1]


def _extra(name: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()
        for req in project["optional-dependencies"][name]
    }


def test_losses_extra_brings_numpy():
    # torch warns "Failed to initialize NumPy" on every import when numpy is missing
    assert {"torch", "numpy"} <= _extra("losses")


def test_arena_extra_and_the_tests_bring_what_the_arena_needs():
    needs = {"scikit-learn", "scipy", "tqdm"}
    assert needs <= _extra("arena") and "kdsurvey" in _extra("arena")  # kdsurvey[losses]
    assert needs <= _extra("test")  # so tests/test_arena.py never skips under CI
