"""One view of the catalogue per build (kdsurvey/exporters/view.py): each data file read once,
``git log`` run once, one set of counts and one BibTeX writer for the README and every page."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from kdsurvey.cli import main
from kdsurvey.exporters import readme, site
from kdsurvey.exporters.citations import bibtex
from kdsurvey.exporters.view import SITE_CONFIG, View, site_url
from kdsurvey.records.catalogue import load
from kdsurvey.records.reading import DATA_FILES

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("kd_synthetic", ROOT / "benchmarks/synthetic.py")
_synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synthetic)


def test_a_build_reads_each_data_file_once_and_asks_git_once(tmp_path, monkeypatch, capsys):
    papers = _synthetic.write_catalogue(tmp_path / "papers", 6)
    ids = sorted(p.stem for p in papers.glob("*.yaml") if p.name not in DATA_FILES)
    (papers / "survey.yaml").write_text(
        f"title: A Survey\npapers: [{ids[0]}, {ids[1]}]\n", encoding="utf-8"
    )
    (tmp_path / "results").mkdir()
    shutil.copy(ROOT / "results/arena.json", tmp_path / "results/arena.json")
    config = site.copy_project(tmp_path / "project")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))

    opened: Counter = Counter()
    real_open, real_run = io.open, subprocess.run

    def spy_open(file, *args, **kwargs):
        opened[str(Path(file).resolve()) if isinstance(file, str | Path) else file] += 1
        return real_open(file, *args, **kwargs)

    commands: list[list[str]] = []

    def spy_run(argv, *args, **kwargs):
        commands.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr("builtins.open", spy_open)
    monkeypatch.setattr(subprocess, "run", spy_run)
    args = ["--papers", str(papers), "--readme", str(tmp_path / "R.md"), "--config", str(config)]
    code = main(["build", *args, "--site-dir", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    for name in ("survey.yaml", "libraries.yaml"):
        assert opened[str((papers / name).resolve())] == 1, name
    assert opened[str((tmp_path / "results/arena.json").resolve())] == 1
    assert opened[str(SITE_CONFIG.resolve())] == 1  # site_url, for the README and the pages
    logs = [c for c in commands if c[:1] == ["git"] and "log" in c]
    assert len(logs) == 1, logs
    text = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert "It started from the 2 papers of *A Survey*" in text  # the survey did reach the README


def test_readme_and_home_page_print_the_same_counts():
    view = View(load(ROOT / "papers"))
    counts = view.counts
    home = site.render_pages(view)[f"{site.INCLUDES}/home-stats.md"]
    text = " ".join(readme.render(view).split())
    assert f"<strong>{counts.papers}</strong><span>papers</span>" in home
    assert f"<strong>{counts.with_code}</strong><span>with code</span>" in home
    assert f"<strong>{counts.losses}</strong><span>losses</span>" in home
    assert f"{counts.with_code} with code; {counts.unconfirmed} with facts" in text
    assert f"Of those {counts.losses} losses, {counts.evidence['reference']} match" in text
    for level, count in counts.levels:
        assert f"{count} [{level}](catalogue/losses/index.md#{level})" in home
    assert sum(count for _, count in counts.levels) == counts.losses


def test_paper_pages_and_the_bib_file_are_the_export_entries():
    catalogue = load(ROOT / "papers")
    view = View(catalogue)
    pages = site.render_pages(view)
    assert pages["kdsurvey.bib"] == view.bibtex_file == bibtex(catalogue)
    assert list(view.bibtex) == sorted(p.id for p in catalogue.papers)
    for p in catalogue.papers[:10]:
        entry = view.bibtex[p.id]
        assert entry == bibtex(catalogue, [p]) and entry.startswith("@")
        assert "{" + p.id + "," in entry.splitlines()[0]


def test_site_url_is_read_as_mkdocs_reads_it(tmp_path, monkeypatch):
    base = tmp_path / "base.yml"
    base.write_text("site_name: x\nsite_url: https://a.example/kd/  # comment\n", "utf-8")
    child = tmp_path / "mkdocs.yml"
    child.write_text("INHERIT: base.yml\n", "utf-8")
    assert site_url(child) == "https://a.example/kd/"
    monkeypatch.setenv("KD_SITE", "https://b.example/")
    child.write_text("site_url: !ENV KD_SITE\n", "utf-8")
    assert site_url(child) == "https://b.example/"
    assert site_url(tmp_path / "missing.yml") == ""
    view = View(load(ROOT / "papers"), config=child)
    assert view.help_url == "https://b.example/catalogue/help/"


def test_readme_exporter_does_not_import_the_site():
    code = (
        "import sys\n"
        "from kdsurvey.exporters import readme\n"
        "assert not [m for m in sys.modules if m.startswith('kdsurvey.exporters.site')]\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_a_view_outside_git_has_no_history(tmp_path):
    papers = _synthetic.write_catalogue(tmp_path / "papers", 3)
    view = View(load(papers))
    assert view.added == {}
    newest = view.newest()
    assert [p.id for p in newest] == [p.id for p in readme.newest_first(view.catalogue.papers)]
    assert view.counts.papers == 3
