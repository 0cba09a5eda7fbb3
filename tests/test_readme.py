"""README: rendered from the records, deterministic, and `--check` catches a stale file."""

from __future__ import annotations

from conftest import GOOD, PAPERS

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
