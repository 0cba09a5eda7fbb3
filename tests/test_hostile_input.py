"""Odd or hostile record files are refused early, with a located error, and never silently skipped.

Every test asserts what the loader decided (the error, its file and line), never how long it took:
``benchmarks/hostile.py`` measures the times.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import GOOD, ROOT

from kdsurvey.records import yamlsource
from kdsurvey.records.catalogue import CatalogueError, load
from kdsurvey.records.reading import MAX_RECORD_BYTES
from kdsurvey.records.yamlsource import MAX_EXPANDED_NODES, YamlProblem, parse


def laughs(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" record: each level is a list of ``width`` aliases of the level before."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"title: *a{levels}")
    return "\n".join(lines) + "\n"


def problems_of(papers):
    with pytest.raises(CatalogueError) as err:
        load(papers)
    return [str(p).replace(str(papers), "papers") for p in err.value.problems]


def test_billion_laughs_is_refused_with_its_line(catalogue_dir):
    text = laughs()
    assert len(text.encode()) < 1024  # a 1 KB record that would expand to 9^9 nodes
    (catalogue_dir / "x.yaml").write_text(text, encoding="utf-8")
    [problem] = problems_of(catalogue_dir)
    # line 6: a5, the first level whose expansion (125,479 nodes) passes the limit
    assert problem.endswith(
        f"x.yaml:6: file: YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes"
    )


def test_alias_expansion_is_counted_not_built(monkeypatch):
    # the limit is checked on the composed nodes: no Python value of the document is built
    monkeypatch.setattr(yamlsource, "_convert", lambda *a: pytest.fail("converted"))
    with pytest.raises(YamlProblem, match="expand to more than 10 nodes") as err:
        yamlsource.check_bounds(yamlsource.FastLoader(laughs(3, 3)).get_single_node(), 10)
    assert err.value.line == 3  # a2: 1 + 3 * (1 + 3 * 2) = 22 nodes


def test_small_alias_use_and_large_plain_lists_are_fine():
    assert parse("a: &x [1, 2]\nb: *x\nc: *x\n", located=False) == {
        "a": [1, 2],
        "b": [1, 2],
        "c": [1, 2],
    }
    # no aliases: a long list is bounded by the file size limit, not by the alias limit
    longer = MAX_EXPANDED_NODES + 1
    assert len(parse("a: [" + ", ".join(["1"] * longer) + "]\n")["a"]) == longer


@pytest.mark.parametrize("loader", [yamlsource.FastLoader, yamlsource.PureLoader])
def test_deep_nesting_is_refused(loader):
    for depth in (yamlsource.MAX_DEPTH + 5, 5000):
        with pytest.raises(YamlProblem, match="nest"):
            parse("a: " + "[" * depth + "]" * depth + "\n", loader)


def test_recursive_alias_is_still_refused():
    with pytest.raises(YamlProblem, match="recursive alias"):
        parse("a: &x [1, *x]\n")


def test_oversized_record_is_refused_before_parsing(catalogue_dir, monkeypatch):
    notes = "x" * MAX_RECORD_BYTES
    (catalogue_dir / "hinton2015distilling.yaml").write_text(
        GOOD + f"notes: {notes}\n", encoding="utf-8"
    )
    monkeypatch.setattr(yamlsource, "parse", lambda *a, **k: pytest.fail("parsed"))
    [problem] = problems_of(catalogue_dir)
    size = len(GOOD) + len(notes) + len("notes: \n")
    assert problem.endswith(
        f"hinton2015distilling.yaml:1: file: is {size:,} bytes: a file may be at most 1 MB"
    )


def test_record_just_under_the_limit_is_read(catalogue_dir):
    path = catalogue_dir / "hinton2015distilling.yaml"
    filler = MAX_RECORD_BYTES - len(GOOD) - len("notes: \n")
    path.write_text(GOOD + "notes: " + "x" * filler + "\n", encoding="utf-8")
    assert path.stat().st_size == MAX_RECORD_BYTES
    [paper] = load(catalogue_dir).papers
    assert len(paper.notes) == filler


@pytest.mark.parametrize("name", ["x.yml", "x.YAML", "x.Yml"])
def test_record_with_another_extension_is_reported_not_skipped(catalogue_dir, name):
    (catalogue_dir / name).write_text(GOOD, encoding="utf-8")
    assert problems_of(catalogue_dir) == [
        f"papers/{name}:1: file: not read: records must end in .yaml"
    ]


def test_validate_refuses_billion_laughs_within_bounded_memory(catalogue_dir):
    """The command line, in a process that may not use more than 1 GiB (before the limit, this
    record took 5 GB)."""
    (catalogue_dir / "x.yaml").write_text(laughs(), encoding="utf-8")
    code = (
        "import resource, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from kdsurvey.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "validate", "--papers", str(catalogue_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,  # a safety net for a regression, not a speed requirement
    )
    assert result.returncode == 1, result.stderr
    assert "x.yaml:6: file: YAML aliases expand to more than" in result.stdout + result.stderr
