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


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_normal(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    """kdsurvey imports nothing that arrives only through another package (markdown through
    mkdocs, urllib3 through requests): each distribution it imports is a dependency or an extra."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    modules = set()
    for path in (ROOT / "kdsurvey").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third = sorted(modules - set(sys.stdlib_module_names) - {"kdsurvey"})
    owners = packages_distributions()
    missing = {
        m: owners.get(m) for m in third if not {_normal(d) for d in owners.get(m, [])} & _declared()
    }
    assert not missing  # module -> the distribution(s) that provide it
    assert {"markdown", "pygments", "urllib3"} <= _declared()


def test_the_pinned_torch_is_the_one_ci_tests_and_the_extra_allows():
    """README's quick start pins the torch CI installs (the version the committed arena results
    name); the ``losses`` extra's floor is at or below it."""
    readme = (ROOT / "kdsurvey/templates/README.md.j2").read_text(encoding="utf-8")
    ci = (ROOT / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    pinned = re.search(r"torch==([\d.]+)", readme).group(1)
    assert f"torch=={pinned} " in ci
    import json

    arena = json.loads((ROOT / "results/arena.json").read_text(encoding="utf-8"))
    assert arena["versions"]["torch"].split("+")[0] == pinned
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [torch] = [r for r in project["optional-dependencies"]["losses"] if r.startswith("torch")]
    floor = re.search(r">=([\d.]+)", torch).group(1)
    assert tuple(map(int, floor.split("."))) <= tuple(map(int, pinned.split(".")))
    assert "not tested" in readme or "untested" in readme  # the README says what the range means
