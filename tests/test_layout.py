"""The package is laid out by stage, and the layers only look down.

foundation (files, problems, gitrepo) < records < importers < checks < exporters < commands (and
cli). The library never imports the command line. :mod:`kdsurvey.losses` (and any library beside
it, such as ``kdsurvey.distill``) is separate: the catalogue's layers may read it only through its
torch-free manifest, evidence table and conventions table. Imports are read with :mod:`ast`, those inside functions
included, so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kdsurvey"
MAX_LINES = 600

#: Rank of each stage; a module may import its own rank and below.
LAYERS = {
    "kdsurvey": 0,
    "kdsurvey.__main__": 6,
    "kdsurvey.files": 0,
    "kdsurvey.problems": 0,
    "kdsurvey.gitrepo": 0,
    "kdsurvey.records": 1,
    "kdsurvey.importers": 2,
    "kdsurvey.checks": 3,
    "kdsurvey.exporters": 4,
    "kdsurvey.commands": 5,
    "kdsurvey.cli": 5,
}
#: Libraries beside the catalogue, in order: each may use the foundation, itself and the ones
#: before it (the harness drives the losses, the arena drives the harness), nothing else.
SEPARATE = ("kdsurvey.losses", "kdsurvey.distill", "kdsurvey.arena")
#: What the catalogue's layers may read of a separate library (no torch behind them).
TORCH_FREE = (
    "kdsurvey.losses.manifest",
    "kdsurvey.losses.evidence",
    "kdsurvey.losses.conventions",
    "kdsurvey.arena.sweep",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> set[str]:
    """The kdsurvey modules ``path`` imports, anywhere in it (``from a import b`` counts ``a.b``
    when that is a module, else ``a``)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {m for m in found if m == "kdsurvey" or m.startswith("kdsurvey.")}


def stage(module: str) -> str:
    """The longest stage prefix of ``module`` (its layer or separate library)."""
    for prefix in sorted([*LAYERS, *SEPARATE], key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_layout.py")


GRAPH = {name: imports(path, name) for name, path in modules().items()}


def test_every_module_has_a_layer():
    for name in GRAPH:
        stage(name)


def test_no_import_cycle():
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = trail[trail.index(name) :] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(GRAPH.get(name, ())):
            # a package's __init__ importing its own modules is not a cycle through them
            if target != name and not (name == target.rpartition(".")[0] and name in trail[-1:]):
                visit(target, [*trail, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def _violations() -> list[str]:
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        home = stage(name)
        for target in sorted(targets):
            there = stage(target)
            if home in SEPARATE:
                below = SEPARATE[: SEPARATE.index(home)]
                if there not in (home, "kdsurvey", *below) and LAYERS.get(there) != 0:
                    wrong.append(
                        f"{name} -> {target}: a separate library uses the foundation and the "
                        "separate libraries before it only"
                    )
            elif there in SEPARATE:
                if LAYERS[home] < LAYERS["kdsurvey.commands"] and target not in TORCH_FREE:
                    wrong.append(
                        f"{name} -> {target}: read losses through {' or '.join(TORCH_FREE)}"
                    )
            elif LAYERS[there] > LAYERS[home]:
                wrong.append(f"{name} -> {target}: {home} may not import {there} (a layer above)")
    return wrong


def test_layers_only_look_down():
    assert _violations() == []


def test_the_library_never_imports_the_command_line():
    library = [n for n in GRAPH if LAYERS.get(stage(n), 0) < LAYERS["kdsurvey.commands"]]
    leaks = [
        f"{name} -> {target}"
        for name in library
        for target in GRAPH[name]
        if stage(target) in ("kdsurvey.cli", "kdsurvey.commands")
    ]
    assert leaks == []


def test_the_checker_sees_a_violation(tmp_path):
    """The test would fail a records module that reached up into the checks."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from kdsurvey.checks.metadata import check\n")
    assert imports(bad, "kdsurvey.records.bad") == {"kdsurvey.checks.metadata"}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_module_is_over_600_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines: split it"


# -- test files skip as a whole only up front ------------------------------------------------------

TESTS = PACKAGE.parent / "tests"
#: Calls that, at module level, skip every test of their file when a module is missing.
SKIPS = {"importorskip", "require", "skip"}


def late_skips(source: str) -> list[int]:
    """Lines of module-level skips placed after the file's first function or class.

    A module-level ``require``/``importorskip``/``pytest.skip`` skips the whole file, the tests
    above it included, so a file of torch-free tests with a torch test added at its end would
    silently skip them all. The rule: such a call must come before the first ``def`` or
    ``class``, where it reads as the whole file's precondition; a test that needs a module the
    others do not takes it inside the test (``require``) or through a fixture.
    """
    found, defined = [], False
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined = True
            continue
        calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
        names = {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in calls}
        if defined and names & SKIPS:
            found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_no_test_file_skips_itself_after_its_first_test(path):
    assert late_skips(path.read_text(encoding="utf-8")) == [], (
        f"{path.name}: a module-level skip below a test skips the tests above it too; take the "
        "module in the tests that need it (conftest.require or a fixture)"
    )


def test_the_skip_rule_sees_a_late_skip_and_allows_one_up_front():
    late = "import pytest\n\ndef test_a():\n    pass\n\ntorch = pytest.importorskip('torch')\n"
    assert late_skips(late) == [6]
    early = "from conftest import require\n\ntorch = require('torch')\n\ndef test_a():\n    pass\n"
    assert late_skips(early) == []
    inside = "from conftest import require\n\ndef test_a():\n    torch = require('torch')\n"
    assert late_skips(inside) == []
