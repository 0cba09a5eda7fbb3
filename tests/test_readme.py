"""README: rendered from the records, deterministic, `--check` catches a stale file, and every
Python block in it runs as printed."""

from __future__ import annotations

import re

from conftest import GOOD, PAPERS, ROOT, require

from kdsurvey.cli import main
from kdsurvey.exporters.readme import render
from kdsurvey.records.catalogue import load


def test_committed_readme_is_current():
    assert (PAPERS.parent / "README.md").read_text(encoding="utf-8") == render(load(PAPERS))


def test_render_is_deterministic():
    assert render(load(PAPERS)) == render(load(PAPERS))


def test_readme_carries_every_paper_in_its_section():
    catalogue = load(PAPERS)
    text = render(catalogue)
    assert text.startswith("<!--") and "kdsurvey readme" in text.split("-->")[0]
    for key, info in catalogue.categories.items():
        section = text.split(f"## {info.title}\n", 1)[1].split("\n## ", 1)[0]
        for paper in catalogue.in_category(key):
            assert (
                f"**[{paper.title.replace('_', chr(92) + '_')}]({paper.links.paper})**" in section
            )
        assert f"[{info.title}](#" in text and f"({len(catalogue.in_category(key))})" in text


def test_entries_sorted_newest_first_then_title(catalogue_dir):
    older = GOOD.replace("year: 2015", "year: 2014").replace("1503.02531", "1403.0253")
    older = older.replace("Distilling the Knowledge", "Zebra Distilling").replace(
        "id: hinton2015distilling", "id: hinton2014zebra"
    )
    (catalogue_dir / "hinton2014zebra.yaml").write_text(older)
    newer = (
        GOOD.replace("Distilling the Knowledge", "Another Knowledge")
        .replace("1503.02531", "1503.02532")
        .replace("id: hinton2015distilling", "id: hinton2015another")
    )
    (catalogue_dir / "hinton2015another.yaml").write_text(newer)
    text = render(load(catalogue_dir))
    order = [text.index(t) for t in ("Another Knowledge", "Distilling the Knowledge", "Zebra")]
    assert order == sorted(order)


def test_entry_links_venue_code_and_loss(catalogue_dir):
    text = render(load(catalogue_dir))
    line = next(ln for ln in text.splitlines() if "Distilling the Knowledge" in ln)
    assert ", arXiv 2015." in line
    assert "[[arXiv](https://arxiv.org/abs/1503.02531)]" in line
    assert "[[loss: `kd`](kdsurvey/losses/kd.py)]" in line


def test_markdown_in_titles_is_escaped(catalogue_dir):
    path = catalogue_dir / "hinton2015distilling.yaml"
    path.write_text(GOOD.replace("in a Neural Network", "in a <script>x</script> [Net]"))
    text = render(load(catalogue_dir))
    assert "<script>" not in text and "&lt;script&gt;" in text and r"\[Net\]" in text


def test_check_round_trip(catalogue_dir, tmp_path, capsys):
    readme = tmp_path / "README.md"
    args = ["--papers", str(catalogue_dir), "-o", str(readme)]
    assert main(["readme", *args, "--check"]) == 1  # missing file is stale
    assert main(["readme", *args]) == 0
    assert main(["readme", *args, "--check"]) == 0
    record = catalogue_dir / "hinton2015distilling.yaml"
    record.write_text(GOOD.replace("Distilling the Knowledge", "Distilling Knowledge"))
    capsys.readouterr()
    assert main(["readme", *args, "--check"]) == 1
    out = capsys.readouterr()
    assert "--- " in out.out and "+++ " in out.out  # a unified diff
    assert "\n-- **[Distilling the Knowledge" in out.out
    assert "\n+- **[Distilling Knowledge" in out.out and "stale" in out.err


def test_readme_not_written_when_records_are_invalid(catalogue_dir, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("old\n")
    (catalogue_dir / "hinton2015distilling.yaml").write_text(GOOD.replace("year: 2015", "year: x"))
    assert main(["readme", "--papers", str(catalogue_dir), "-o", str(readme)]) == 1
    assert readme.read_text() == "old\n"
    assert "hinton2015distilling.yaml:8: year:" in capsys.readouterr().err


def test_intro_counts_the_losses_by_how_they_were_checked(catalogue_dir):
    # The fixture's record names `kd` (reference cases); a second one names `icls` (paper only).
    other = GOOD.replace("loss: kd", "loss: icls").replace("1503.02531", "1503.02532")
    other = other.replace("Distilling the Knowledge", "Smoothing the Knowledge").replace(
        "id: hinton2015distilling", "id: hinton2015smoothing"
    )
    (catalogue_dir / "hinton2015smoothing.yaml").write_text(other)
    text = " ".join(render(load(catalogue_dir)).split())
    assert "Of those 2 losses, 1 match the loss and gradients" in text
    # kd's cases come from mdistiller, and the fixture's Hinton record links no official code
    assert "(0 the authors' own code, 1 a library or re-implementation" in text
    assert "0 were compared with the official code without a stored case, and 1 are written" in text


def test_arena_sentence_counts_the_losses_worse_than_the_plain_student():
    import json

    from kdsurvey.arena import sweep

    results = json.loads((PAPERS.parent / "results" / "arena.json").read_text(encoding="utf-8"))
    worse = sweep.worse_than_student(results["summary"])
    text = render(load(PAPERS))
    assert (
        "Worse than the plain student (paired t-test, p < 0.05): "
        f"{len(worse['authors'])} at the authors' settings, {len(worse['swept'])} at the swept "
        "weight." in " ".join(text.split())
    )


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Each ```python block of a Markdown text, with the line its code starts on."""
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


def test_every_python_block_of_the_readme_runs():
    """Each block alone (a fresh namespace), as a reader pastes it; tracebacks point at
    README.md's own lines."""
    require("torch", "the losses extra")
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 2  # create() in a training loop, the Distiller harness
    for line, block in blocks:
        code = compile("\n" * (line - 1) + block, str(ROOT / "README.md"), "exec")
        exec(code, {"__name__": "__readme__"})  # noqa: S102 - our README


def test_python_blocks_are_found_with_their_lines():
    text = "# t\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = 2\nz = 3\n```\n"
    assert python_blocks(text) == [(4, "x = 1\n"), (11, "y = 2\nz = 3\n")]
