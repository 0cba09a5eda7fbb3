"""The website: page generation from the records, and strict MkDocs (and Zensical) builds.

The real catalogue is built once per module into a temporary copy of the skeleton (``mkdocs.yml`` +
``docs/`` of ``kdsurvey/website/``), so the tests never touch the working tree's generated pages or
``public/``.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from kdsurvey.arena import sweep
from kdsurvey.cli import main
from kdsurvey.exporters import arena_page, site
from kdsurvey.exporters.evidence import SCOPE, github_repo
from kdsurvey.exporters.loss_facts import EVIDENCE, facts
from kdsurvey.exporters.site import mkdocs as site_mkdocs
from kdsurvey.exporters.site.markdown import doc_html
from kdsurvey.exporters.view import View
from kdsurvey.losses import manifest
from kdsurvey.records.catalogue import load
from kdsurvey.records.model import citation_key

ROOT = Path(__file__).resolve().parent.parent
PAPERS = ROOT / "papers"
DKD = "zhao2022decoupled"
MOUNT = "/kdsurvey/"  # the path of site_url in mkdocs.yml
_spec = importlib.util.spec_from_file_location("kd_synthetic", ROOT / "benchmarks/synthetic.py")
_synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_synthetic)
write_catalogue = _synthetic.write_catalogue
EVIL_NOTES = 'First line.\n--8<-- "index.md"\n'
EVIL_TITLE = '<script>alert("x")</script> *Distilling* [links](javascript:x) & `code` | --8<--'


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real catalogue built into a temporary project: (catalogue, project dir, site dir)."""
    tmp = tmp_path_factory.mktemp("real")
    config = site.copy_project(tmp / "project")
    catalogue = load(PAPERS)
    site.build(catalogue, config, tmp / "public")
    return catalogue, config.parent, tmp / "public"


def evil_record(papers: Path) -> str:
    """Add a record whose user strings try Markdown, HTML and snippet injection; return its id."""
    author = "O'Brien <b>, Anna & *Bo*"
    key = citation_key(author, 2024, EVIL_TITLE)
    (papers / f"{key}.yaml").write_text(
        "\n".join(
            [
                f"id: {key}",
                f"title: {json.dumps(EVIL_TITLE)}",
                "authors:",
                f"  - {json.dumps(author)}",
                "year: 2024",
                "venue: cvpr",
                "category: logit",
                "tasks: [classification]",
                "links:",
                "  paper: https://example.org/a_(b)",
                "  code: https://gitlab.com/o/_r_*x*",
                "loss: kd",
                f"summary: {json.dumps('A summary with <img src=x onerror=alert(1)> and __bold__.')}",
                f"notes: {json.dumps(EVIL_NOTES)}",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return key


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A synthetic catalogue of 30 papers plus the hostile record, built once."""
    tmp = tmp_path_factory.mktemp("small")
    papers = write_catalogue(tmp / "papers", 30)
    key = evil_record(papers)
    config = site.copy_project(tmp / "project")
    catalogue = load(papers)
    site.build(catalogue, config, tmp / "public")
    return catalogue, config.parent, tmp / "public", key


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in ("src", "data-src"):
            if attrs.get(name):
                self.resources.append(attrs[name])
        if tag == "link" and attrs.get("href") and attrs.get("rel") not in ("canonical", None):
            self.resources.append(attrs["href"])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# -- escaping and loss introspection ----------------------------------------------------------


def test_md_text_escapes_markdown_and_html():
    out = site.md_text('<b>x</b> *y* _z_ [a](b) `c` # | & "q"')
    assert "<" not in out and ">" not in out
    assert "&lt;b&gt;" in out and "&amp;" in out and "&quot;q&quot;" in out
    for ch in "*_[]`#|":
        assert f"\\{ch}" in out


def test_fence_is_longer_than_any_backtick_run():
    assert site.fence("plain") == "```"
    assert site.fence("a ```` b") == "`````"


def test_every_loss_of_the_manifest_has_its_facts():
    for name in manifest.names():
        info = facts(name)
        assert info is not None, name
        assert info.cls and info.line > 0 and info.module.startswith("kdsurvey/losses/"), name
        assert info.evidence in EVIDENCE, name


def test_loss_pages_say_how_each_loss_was_checked():
    pages = site.render_pages(load(PAPERS))
    dkd = pages["losses/dkd.md"]
    assert (
        "<strong>reference</strong>: checked against <a "
        'href="https://github.com/megvii-research/mdistiller"><code>megvii-research/mdistiller'
    ) in dkd
    assert "the authors' official code" in dkd
    icls = pages["losses/icls.md"]
    assert f"<strong>{facts('icls').evidence}</strong>: " in icls
    notes = icls.split("## Implementation notes", 1)[1].split("\n<p>Source: ", 1)[0]
    assert "UNCERTAIN: no code was released" in notes
    # a paper page links to the loss's page instead of repeating it
    paper = pages["papers/zhao2022decoupled.md"]
    assert 'href="../../losses/dkd/"' in paper and "from kdsurvey.losses import" not in paper


def _official(p) -> str | None:
    return github_repo(p.links.code) if p.links.code and p.links.code_official else None


def test_evidence_never_contradicts_the_paper_page_links():
    """On every paper page, what a loss was checked against agrees with the page's code link."""
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue)
    by_id = {p.id: p for p in catalogue.papers}
    for p in catalogue.papers:
        page = pages[f"papers/{p.id}.md"]
        for name in p.loss:
            info = facts(name)
            block = page.split(f"### `{name}` {{ #loss-{site.slug(name)} ", 1)[1]
            block = block.split("\n### ", 1)[0].split("\n## ", 1)[0]
            owner = by_id.get(info.paper)
            official = _official(owner) if owner else None
            if "the authors' official code" in block:
                repo = (info.reference or {}).get("repo") or official
                assert official and official.lower() == repo.lower(), p.id
            if info.reference and info.reference.get("repo") and official is None:
                assert "not the authors' code" in block, (p.id, name)
            if official is None:
                assert "authors' official code" not in block, (p.id, name)
            else:
                assert "no official code is available" not in block.lower(), (p.id, name)
            if info.evidence in ("paper", "abstract", "title") and official:
                assert owner.links.code_scope, f"{owner.id}: official code but {info.evidence}"
                assert SCOPE[owner.links.code_scope] in block, (p.id, name)
    for pid in ("hinton2015distilling", "feng2021double", "peng2019correlation"):
        assert "not the authors' code" in pages[f"papers/{pid}.md"], pid
    for pid in ("gambashidze2024weak", "liu2024bpkd", "yuan2024fakd", "zhang2018better"):
        assert "no official code is available" not in pages[f"papers/{pid}.md"].lower(), pid


@pytest.mark.parametrize("level", ["paper", "abstract", "title"])
def test_written_from_sentences_read_as_sentences(level):
    """'... so this loss was written from ...': never 'was only the title was available'."""
    import dataclasses

    from kdsurvey.exporters.evidence import sentence

    text = sentence(dataclasses.replace(facts("kd"), evidence=level), None)
    assert f"**{level}**: no official code is available, so this loss was written from " in text
    assert "was only" not in text and "written from the paper's" in text, text


def test_home_counts_losses_per_evidence_level():
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue)
    stats = pages[f"{site.INCLUDES}/home-stats.md"]
    named = {n for p in catalogue.papers for n in p.loss if manifest.entry(n)}
    per_level = Counter(manifest.entry(n)["evidence"] for n in named)
    named = len(named)
    assert f"<strong>{named}</strong><span>losses</span>" in stats
    for level, count in per_level.items():
        assert f"{count} [{level}](catalogue/losses/index.md#{level})" in stats
    assert "reference losses" not in stats


#: The language-model distillation papers of issue 21, filed under the task language-modeling.
LANGUAGE_MODELING = {
    "gu2024minillm",
    "agarwal2024policy",
    "wen2023f",
    "hsieh2023distilling",
    "ko2024distillm",
    "boizard2025cross",
    "zhong2024revisiting",
    "wu2025rethinking",
    "li2025bild",
    "zhang2024dual",
    "muralidharan2024compact",
    "gu2025miniplm",
    "xu2025speculative",
    "cui2025multi",
    "shing2025taid",
    "ko2025distillm",
    "anshumann2025sparse",
    "wang2025abkd",
}


def test_task_pages_list_their_papers_and_the_home_page_links_every_task():
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue)
    home = pages[f"{site.INCLUDES}/home-tasks.md"]
    by_task = {key: {p.id for p in catalogue.papers if key in p.tasks} for key in catalogue.tasks}
    counts = []
    for key, ids in by_task.items():
        if not ids:
            assert f"tasks/{key}.md" not in pages and f"tasks/{key}.md" not in home
            continue
        listed = re.findall(r'<td><a href="\.\./\.\./papers/([^/"]+)/">', pages[f"tasks/{key}.md"])
        assert sorted(listed) == sorted(ids), key  # each paper of the task, once
        label = site.md_text(catalogue.tasks[key].title)
        link = f"[{label}](catalogue/tasks/{key}.md) ({len(ids)})"
        assert home.count(link) == 1, key
        counts.append((home.index(link), -len(ids)))
    assert [c for _, c in sorted(counts)] == sorted(c for _, c in counts)  # most papers first
    assert by_task["language-modeling"] >= LANGUAGE_MODELING
    lm = pages["tasks/language-modeling.md"]
    assert "# Language modelling / instruction following papers" in lm


def test_every_manifest_formula_converts_to_mathml():
    for name in manifest.names():
        info = facts(name)
        texts = list(info.math) + re.findall(r"\$([^$]+)\$", info.description + info.notes)
        for latex in texts:
            out = site.mathml(latex)
            assert out.startswith("<math") and "\\" not in out, (name, latex)


def test_loss_pages_show_the_authors_settings_with_their_sources():
    """Each preset of the manifest is a row of its loss page (name, label weight, warm-up,
    source); a loss without presets says that none were found."""
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue)
    with_presets = 0
    for name in {n for p in catalogue.papers for n in p.loss}:
        page = pages[f"losses/{site.slug(name)}.md"]
        presets = manifest.entry(name)["presets"]
        rows = [r for r in page.splitlines() if r.startswith("<tr data-preset=")]
        assert len(rows) == len(presets), name
        for row, p in zip(rows, facts(name).presets, strict=True):
            assert row.startswith(f'<tr data-preset="{p.name}"><td><code>{p.name}</code>')
            assert ("(default)" in row) == p.default
            assert doc_html(p.source) in row and f"<td>{p.task_weight}</td>" in row
            for key, value in p.kwargs:  # a named preset's overrides, as Python
                assert f"<code>{key}={html.escape(value)}</code>" in row, (name, key)
        if not presets:
            assert "No training settings of its authors were found" in page, name
        with_presets += bool(presets)
    assert with_presets >= 50
    at = pages[f"losses/{site.slug('at')}.md"]
    assert (
        "<td><code>loss_weight</code></td><td><code>float</code></td><td><code>1000.0</code>" in at
    )


def test_hyperparameter_tables_are_the_manifest():
    """Every row of every loss page's hyperparameter table is the manifest's, meaning included."""
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue)
    names = {n for p in catalogue.papers for n in p.loss}
    for name in names:
        page = pages[f"losses/{site.slug(name)}.md"]
        rows = [r for r in page.splitlines() if r.startswith("<tr><td><code>")]
        entry = manifest.entry(name)
        assert len(rows) == len(entry["hyperparameters"]), name
        for row, h in zip(rows, entry["hyperparameters"], strict=True):
            assert row.startswith(f"<tr><td><code>{h['name']}</code></td>"), (name, row)
            assert row.endswith(f"<td>{doc_html(h['meaning'])}</td></tr>"), (name, row)
            assert h["meaning"].strip(), (name, h["name"])  # no empty Meaning cell


def test_loss_facts_carry_hyperparameters_and_defaults():
    info = facts("dkd")
    params = {p.name: p.default for p in info.params}
    assert info.cls == "DKD" and info.module == "kdsurvey/losses/dkd.py"
    assert params["alpha"] == "1.0" and params["beta"] == "8.0" and params["temperature"] == "4.0"
    assert info.inputs[:2] == ("logits_student", "logits_teacher")
    assert info.reference and info.reference["repo"] == "megvii-research/mdistiller"
    source = (ROOT / info.module).read_text().splitlines()
    assert "DKD" in source[info.line - 1] or source[info.line - 1].startswith('@register("dkd"')


def test_pages_and_readme_do_not_import_torch_or_read_loss_source():
    code = (
        "import sys, builtins, io\n"
        "opened = []\n"
        "real = io.open\n"
        "def spy(f, *a, **k):\n"
        "    opened.append(str(f)); return real(f, *a, **k)\n"
        "builtins.open = io.open = spy\n"
        "from kdsurvey.exporters import readme, site\n"
        "from kdsurvey.records.catalogue import load\n"
        "c = load('papers'); site.render_pages(c); readme.render(c)\n"
        "assert 'torch' not in sys.modules\n"
        "src = [f for f in opened if '/losses/' in f and f.endswith('.py')]\n"
        "assert not src, src\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- generation -------------------------------------------------------------------------------


def test_pages_cover_the_catalogue():
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue, site.Links("https://github.com/o/r"))
    for p in catalogue.papers:
        assert f"papers/{p.id}.md" in pages
    for key in catalogue.categories:
        assert f"categories/{key}.md" in pages
    for p in catalogue.papers:
        for t in p.tasks:
            assert f"tasks/{t}.md" in pages
    assert "venues/index.md" in pages and "tasks/index.md" in pages
    assert {"_include/home-stats.md", "_include/home-chart.md"} <= pages.keys()


def test_paper_page_has_searchable_metadata_and_edit_link():
    catalogue = load(PAPERS)
    pages = site.render_pages(catalogue, site.Links("https://github.com/o/r"))
    page = pages[f"papers/{DKD}.md"]
    front = page.split("---\n")[1]
    assert f'edit_url: "https://github.com/o/r/edit/main/papers/{DKD}.yaml"' in front
    assert "Borui Zhao" in page and "CVPR" in page and "`dkd`" in page
    assert ">arXiv:2203.08679</a>" in page
    assert 'href="../../losses/dkd/"' in page
    assert "https://github.com/o/r/blob/main/kdsurvey/losses/dkd.py#L" in pages["losses/dkd.md"]


def test_related_papers_come_from_real_relations():
    """A shared loss, a loss built on the other's, or same category and a shared task; and
    papers building on DKD's loss list DKD first."""
    catalogue = load(PAPERS)
    related = site.related(catalogue)
    by_id = {p.id: p for p in catalogue.papers}
    for pid, others in related.items():
        p = by_id[pid]
        assert len(others) <= site.RELATED
        for q, why in others:
            assert q.id != pid and why
            assert (
                set(q.loss) & set(p.loss)
                or "built on" in why
                or "builds on" in why
                or (q.category == p.category and set(q.tasks) & set(p.tasks))
            ), (pid, q.id, why)
    for pid in ("wei2024scaled", "sun2024logit"):  # SDD and logit standardisation extend DKD
        assert related[pid][0][0].id == DKD, pid
        assert "builds on" in related[pid][0][1]


def test_generate_writes_only_changes_and_removes_stale_pages(tmp_path):
    papers = write_catalogue(tmp_path / "papers", 12)
    docs = tmp_path / "docs"
    first = site.generate(load(papers), docs)
    assert first.written and not first.removed
    again = site.generate(load(papers), docs)
    assert again.written == [] and again.unchanged == len(first.written)
    mtimes = {p: p.stat().st_mtime_ns for p in docs.rglob("*.md")}

    victim = sorted(p for p in papers.glob("*.yaml") if p.name not in site_data_files())[0]
    victim.unlink()
    third = site.generate(load(papers), docs)
    assert f"papers/{victim.stem}.md" in third.removed
    assert not (docs / site.GENERATED / "papers" / f"{victim.stem}.md").exists()
    untouched = [p for p, t in mtimes.items() if p.exists() and p.stat().st_mtime_ns == t]
    assert untouched  # pages that did not change were not rewritten


def site_data_files():
    from kdsurvey.records.reading import DATA_FILES

    return set(DATA_FILES)


def test_generation_is_deterministic():
    catalogue = load(PAPERS)
    assert site.render_pages(catalogue) == site.render_pages(catalogue)


# -- the built site ---------------------------------------------------------------------------


def test_real_site_builds_strict_with_expected_pages(real):
    catalogue, _, out = real
    assert (out / "index.html").exists()
    assert (out / "catalogue/papers" / DKD / "index.html").exists()
    for key in catalogue.categories:
        assert (out / "catalogue/categories" / key / "index.html").exists()
    home = (out / "index.html").read_text(encoding="utf-8")
    assert "<svg" in home and "Papers per year" in home
    for p in catalogue.papers:  # the facts: one flat list (a lost blank line nests them)
        page = (out / "catalogue/papers" / p.id / "index.html").read_text(encoding="utf-8")
        facts_html = page.split('<div class="kd-facts">', 1)[1].split("</div>", 1)[0]
        assert facts_html.count("<dl>") == 1 and "Field" not in facts_html, p.id
        assert facts_html.count("<dt>") == facts_html.count("<dd>"), p.id
    assert f"<strong>{len(catalogue.papers)}</strong>" in home
    for key in {t for p in catalogue.papers for t in p.tasks}:  # the home page's line of tasks
        assert f'href="catalogue/tasks/{key}/"' in home, key
        assert (out / "catalogue/tasks" / key / "index.html").exists(), key
    board = (out / "catalogue/leaderboards/dolly/index.html").read_text(encoding="utf-8")
    assert "Instruction following (DollyEval) leaderboard" in board  # language models' board
    assert "Gain over own KD" in board and "ROUGE-L of the baselines, across papers" in board
    index = (out / "catalogue/leaderboards/index.html").read_text(encoding="utf-8")
    assert 'href="dolly/"' in index


def test_no_broken_internal_link_and_no_external_resource(real):
    _, _, out = real
    problems, parsed = [], {}

    def page(file: Path) -> _Links:
        if file not in parsed:
            parsed[file] = _parse(file)
        return parsed[file]

    for path in sorted(out.rglob("*.html")):
        here = page(path)
        page_url = "/" + path.relative_to(out).as_posix()
        for href in here.links + here.resources:
            parts = urlsplit(href)
            if parts.scheme == "data":  # a download link holding its file (BibTeX)
                continue
            if parts.scheme in ("http", "https", "mailto") or href.startswith("//"):
                if href in here.resources:
                    problems.append(f"{page_url}: external resource {href}")
                continue
            target = urlsplit(urljoin(page_url, href))
            path_ = unquote(target.path)
            if path_.startswith(MOUNT):  # 404.html links from the site_url's path
                path_ = path_[len(MOUNT) - 1 :]
            file = out / path_.lstrip("/")
            if target.path.endswith("/") or file.is_dir():
                file = file / "index.html"
            if not file.exists():
                problems.append(f"{page_url}: broken link {href}")
            elif (
                target.fragment and file.suffix == ".html" and target.fragment not in page(file).ids
            ):
                problems.append(f"{page_url}: missing anchor {href}")
    assert not problems, "\n".join(problems[:20])


def test_paper_pages_stay_out_of_the_navigation(real):
    _, _, out = real
    about = (out / "about/index.html").read_text(encoding="utf-8")
    nav = about[about.index('<nav class="md-nav md-nav--primary') :]
    nav = nav[: nav.index('<nav class="md-nav md-nav--secondary')]
    assert "catalogue/categories/logit/" in nav and "catalogue/venues/" in nav
    assert "catalogue/papers/" not in about  # not in the navigation of any page


def test_edit_buttons(real):
    _, _, out = real
    paper = (out / "catalogue/papers" / DKD / "index.html").read_text(encoding="utf-8")
    edits = re.findall(r'<a href="([^"]+)"[^>]*rel="edit"', paper)
    assert edits == [f"https://github.com/kdsurvey/kdsurvey/edit/main/papers/{DKD}.yaml"]
    about = (out / "about/index.html").read_text(encoding="utf-8")
    assert re.findall(r'<a href="([^"]+)"[^>]*rel="edit"', about) == [
        "https://github.com/kdsurvey/kdsurvey/edit/main/kdsurvey/website/docs/about.md"
    ]
    task = next((out / "catalogue/tasks").glob("*/index.html")).read_text(encoding="utf-8")
    assert 'rel="edit"' not in task  # no single source file to edit


def test_bibtex_block_and_file_parse(real):
    import bibtexparser

    _, _, out = real
    paper = (out / "catalogue/papers" / DKD / "index.html").read_text(encoding="utf-8")
    link = re.search(
        r'<a download="([^"]+)" href="data:application/x-bibtex;charset=utf-8,([^"]+)"', paper
    )
    assert link and link.group(1) == f"{DKD}.bib"
    library = bibtexparser.parse_string(unquote(link.group(2)))
    assert [e.key for e in library.entries] == [DKD] and not library.failed_blocks
    block = paper.split('<div class="language-bibtex highlight"><pre><span></span><code>', 1)[1]
    shown = html.unescape(block.split("</code></pre>", 1)[0])
    assert shown == unquote(link.group(2))  # the block shows what the link downloads


def test_search_index_finds_title_author_loss_venue_and_arxiv(real):
    catalogue, _, out = real
    index = json.loads((out / "search/search_index.json").read_text(encoding="utf-8"))
    docs = [d for d in index["docs"] if d["location"].startswith(f"catalogue/papers/{DKD}/")]
    text = " ".join(d["title"] + " " + d["text"] for d in docs)
    for needle in ("Decoupled Knowledge Distillation", "Borui Zhao", "dkd", "CVPR", "2203.08679"):
        assert needle in text, needle
    listed = {d["location"].split("#")[0] for d in index["docs"]}
    assert "catalogue/venues/cvpr/" in listed  # venue, task and category pages are found...
    logit = [d for d in index["docs"] if d["location"].startswith("catalogue/categories/logit/")]
    assert DKD not in json.dumps(logit)  # ...but their tables stay out of the index
    curation = next(p for p in catalogue.papers if p.notes)
    words = " ".join(d["text"] for d in index["docs"] if curation.id in d["location"])
    assert curation.notes.split(".")[0][:40] not in words  # curation notes are not searched


class _Visible(HTMLParser):
    """The text a reader sees in a page's content (scripts, styles and MathML left out)."""

    SKIP = {"script", "style", "math", "code", "pre", "svg"}

    def __init__(self):
        super().__init__()
        self.depth, self.inside, self.parts = 0, 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1
        if tag == "article":
            self.inside += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.depth = max(0, self.depth - 1)
        if tag == "article":
            self.inside -= 1

    def handle_data(self, data):
        if not self.depth and self.inside:
            self.parts.append(data)


def test_no_raw_latex_or_markdown_shows_as_text(real):
    """Every built page's visible text: no LaTeX command, no ``$`` math, no literal ``**``."""
    _, _, out = real
    bad = re.compile(r"\\[A-Za-z]{2,}|\*\*|\$[^$\s][^$]*\$|\]\(")
    problems = []
    for file in sorted(out.rglob("*.html")):
        parser = _Visible()
        parser.feed(file.read_text(encoding="utf-8"))
        text = " ".join(parser.parts)
        for match in bad.finditer(text):
            problems.append(
                f"{file.relative_to(out)}: {text[max(0, match.start() - 30) : match.end() + 30]!r}"
            )
    assert not problems, "\n".join(problems[:20])


def test_search_index_stays_small(real):
    """The loss pages hold each loss once; tables, notes and BibTeX stay out of the index."""
    catalogue, _, out = real
    size = (out / "search/search_index.json").stat().st_size
    # 96.6 KB for 68 papers when written (704 KB with every loss section and table indexed)
    assert size < 1_500 * len(catalogue.papers), size


def test_hostile_strings_show_as_text(small):
    _, _, out, key = small
    html = (out / "catalogue/papers" / key / "index.html").read_text(encoding="utf-8")
    article = html[html.index("<article") : html.index("</article>")]
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; *Distilling* [links]" in article
    assert "O'Brien &lt;b&gt;" in article or "O&#x27;Brien &lt;b&gt;" in article
    assert "--8&lt;--" in article  # the notes' snippet directive stayed text
    assert "<title>&lt;script&gt;" in html
    assert "<em>" not in article  # no emphasis from *...* or _..._ in titles, authors, links
    logit = (out / "catalogue/categories/logit/index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in logit and "&lt;script&gt;alert" in logit
    assert 'href="https://example.org/a_%28b%29"' in html


def test_search_index_escapes_titles(small):
    _, _, out, key = small
    raw = (out / "search/search_index.json").read_text(encoding="utf-8")
    assert "<script>alert" not in raw and "&lt;script&gt;alert" in raw


# -- command line -----------------------------------------------------------------------------


def test_cli_build_runs_every_stage(tmp_path, capsys, monkeypatch):
    papers = write_catalogue(tmp_path / "papers", 8)
    config = site.copy_project(tmp_path / "project")
    readme = tmp_path / "README.md"
    # a temporary directory of this test's own: the system's is shared with other processes
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    code = main(
        [
            "build",
            "--papers",
            str(papers),
            "--readme",
            str(readme),
            "--config",
            str(config),
            "--site-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert readme.exists() and (tmp_path / "out/index.html").exists()
    assert capsys.readouterr().err == ""  # quiet on success
    assert sorted(p.name for p in tmp.iterdir()) == []  # no mkdocs_* (or other) folder left


def build_cli(tmp_path: Path, papers: Path, config: Path) -> int:
    """``kdsurvey build`` into ``tmp_path`` (README ``R.md``, site ``out/``); its exit code."""
    readme, out = tmp_path / "R.md", tmp_path / "out"
    args = ["--papers", str(papers), "--readme", str(readme), "--config", str(config)]
    return main(["build", *args, "--site-dir", str(out)])


def test_cli_build_stops_at_an_invalid_record(tmp_path, capsys):
    papers = write_catalogue(tmp_path / "papers", 3)
    bad = sorted(p for p in papers.glob("*.yaml") if p.name not in site_data_files())[0]
    bad.write_text(bad.read_text().replace("year:", "year: 1900\nold:"), encoding="utf-8")
    config = site.copy_project(tmp_path / "project")
    code = build_cli(tmp_path, papers, config)
    assert code == 1 and bad.name in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists() and not (tmp_path / "out").exists()


def test_cli_build_reports_site_warnings(tmp_path, capsys):
    papers = write_catalogue(tmp_path / "papers", 3)
    config = site.copy_project(tmp_path / "project")
    about = config.parent / "docs/about.md"
    about.write_text(about.read_text() + "\n[broken](no-such-page.md)\n", encoding="utf-8")
    code = build_cli(tmp_path, papers, config)
    err = capsys.readouterr().err
    assert code == 1 and "no-such-page.md" in err and "site: " in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    # A hang guard, not a speed test: a busy machine may take long to answer during a rebuild.
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8")


def test_serve_regenerates_when_a_record_changes(tmp_path):
    papers = write_catalogue(tmp_path / "papers", 5)
    tmp = tmp_path / "tmp"  # the server's temporary directory
    tmp.mkdir()
    config = site.copy_project(tmp_path / "project")
    port = _free_port()
    record = sorted(p for p in papers.glob("*.yaml") if p.name not in site_data_files())[0]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kdsurvey",
            "serve",
            "--papers",
            str(papers),
            "--config",
            str(config),
            "--dev-addr",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)},
    )
    url = f"http://127.0.0.1:{port}/kdsurvey/catalogue/papers/{record.stem}/"
    try:
        deadline = time.monotonic() + 300  # hang guard only: the test asserts what is served
        page = None
        while time.monotonic() < deadline and page is None:
            try:
                page = _get(url)
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.3)
        assert page is not None, "the server did not come up"
        assert "kdsurvey-was-here" not in page
        text = record.read_text(encoding="utf-8")
        record.write_text(
            re.sub(r"summary: .*", "summary: Changed, kdsurvey-was-here.", text), encoding="utf-8"
        )
        while time.monotonic() < deadline:
            try:
                if "kdsurvey-was-here" in _get(url):
                    break
            except OSError:  # the server is busy rebuilding; ask again
                assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.3)
        else:
            pytest.fail("the page was not regenerated")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    # stopped with SIGTERM, the server leaves no mkdocs_* (or other) folder in its TMPDIR
    assert sorted(p.name for p in tmp.iterdir()) == []
    err = proc.stderr.read()
    assert "Serving on" in err and "regenerated 1 page" in err  # it did log, and did rebuild
    assert "dirty" not in err  # MkDocs' "dirty build" warning, once per build, is left out


# -- Zensical ---------------------------------------------------------------------------------


def _zensical() -> list[str] | None:
    exe = shutil.which("zensical")
    if exe:
        return [exe]
    try:
        import zensical  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "zensical"]


@pytest.mark.skipif(_zensical() is None, reason="zensical is not installed")
def test_zensical_builds_the_same_configuration(small, tmp_path):
    _, project, _, key = small
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    result = subprocess.run(
        [*_zensical(), "build", "--strict", "-f", "mkdocs.yml"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = copy / "public"
    assert (out / "index.html").exists()
    html = (out / "catalogue/papers" / key / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert f"/edit/main/papers/{key}.yaml" in html
    assert "kd-stats" in (out / "index.html").read_text(encoding="utf-8")  # snippets included


def test_a_failed_build_leaves_the_previous_site_whole(small, monkeypatch):
    catalogue, project, _, _ = small
    out = project.parent / "swap-public"
    site.build(catalogue, project / "mkdocs.yml", out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before and (out.stat().st_mode & 0o777) == 0o755

    def half_build(config):
        Path(config["site_dir"], "index.html").write_text("half")
        raise site.SiteError(["WARNING: planted"])

    monkeypatch.setattr(site_mkdocs, "run_mkdocs", half_build)
    with pytest.raises(site.SiteError):
        site.build(catalogue, project / "mkdocs.yml", out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".swap-public")] == []


# -- installed package ------------------------------------------------------------------------


@pytest.mark.install
def test_installed_package_builds_the_site(tmp_path):
    """``pip install .`` (a wheel, not editable) into a fresh environment, then ``kdsurvey build
    --papers <copy>`` in an empty folder: templates, site skeleton and manifest are package data.
    Offline: the environment sees this one's site-packages for the dependencies (a ``.pth``
    line), and a stub ``torch`` that raises proves the build never imports torch."""
    import sysconfig

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", site.GENERATED)
    shutil.copytree(ROOT / "kdsurvey", src / "kdsurvey", ignore=skip)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "parent-env.pth").write_text("\n".join(sorted(ours)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "--disable-pip-version-check", str(src)],
        check=True,
        cwd=tmp_path,
    )

    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise RuntimeError('kdsurvey build imported torch')\n")
    work = tmp_path / "work"
    shutil.copytree(PAPERS, work / "papers")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(stub.parent)
    where = subprocess.run(
        [python, "-c", "import kdsurvey; print(kdsurvey.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert Path(where).resolve().is_relative_to(venv.resolve()), where  # not this checkout
    result = subprocess.run(
        [venv / "bin" / "kdsurvey", "build", "--papers", "papers"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (work / "public" / "index.html").exists()
    assert (work / "public" / "catalogue" / "papers" / DKD / "index.html").exists()
    assert (work / "README.md").exists()
    installed = Path(where).resolve().parent
    assert not (installed / "website" / "docs" / site.GENERATED).exists()  # package untouched


def test_root_configuration_inherits_the_packaged_skeleton():
    """One hand-maintained configuration: the root mkdocs.yml adds only where the skeleton is."""
    root = site.load_config(ROOT / "mkdocs.yml")
    packaged = site.load_config(site.CONFIG)
    assert Path(root.docs_dir) == Path(packaged.docs_dir) == site.SKELETON / "docs"
    for key in ("nav", "markdown_extensions", "edit_uri", "repo_url", "site_url", "extra_css"):
        assert root[key] == packaged[key], key
    assert root.theme.dirs == packaged.theme.dirs
    own = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    keys = {line.split(":")[0] for line in own.splitlines() if line and line[0].isalpha()}
    assert keys == {"INHERIT", "docs_dir", "theme"}


# -- the arena --------------------------------------------------------------------------------


class _ArenaRows(HTMLParser):
    """Row key -> the numbers (data-kd-value) of its row, in column order; a row's key is the
    values of ``keys`` (its data attributes), rows without them belong to another table."""

    def __init__(self, keys=("data-task", "data-loss")):
        super().__init__()
        self.keys = keys
        self.rows: dict[tuple[str, ...], list[float]] = {}
        self.current: tuple[str, ...] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            keyed = all(k in attrs for k in self.keys)
            self.current = tuple(attrs[k] for k in self.keys) if keyed else None
            if self.current:
                self.rows[self.current] = []
        elif tag == "td" and self.current and "data-kd-value" in attrs:
            self.rows[self.current].append(float(attrs["data-kd-value"]))


def test_arena_page_rows_are_the_results_file(real):
    catalogue, _, out = real
    results = json.loads((ROOT / "results" / "arena.json").read_text(encoding="utf-8"))
    html = (out / "catalogue" / "arena" / "index.html").read_text(encoding="utf-8")
    parser = _ArenaRows()
    parser.feed(html)
    summary = results["summary"]
    assert set(parser.rows) == {(t, loss) for t, entries in summary.items() for loss in entries}
    for (task, loss), numbers in parser.rows.items():
        e = summary[task][loss]
        swept = e.get("sweep") or {}
        if "mean" not in e:  # failed at the authors' settings: only the sweep's numbers remain
            assert len(numbers) <= 4
            continue
        assert numbers[0] == pytest.approx(100 * e["mean"], abs=1e-4)
        assert numbers[-1] == pytest.approx(e["time_per_epoch_s"], abs=1e-4)
        for key in ("gain_vs_student", "gain_vs_kd"):
            if key in e:
                assert pytest.approx(100 * e[key]["mean"], abs=1e-4) in numbers
        if "mean" in swept:  # the swept weight's factor, score and gain follow the authors'
            assert pytest.approx(swept["factor"]) in numbers
            assert pytest.approx(100 * swept["mean"], abs=1e-4) in numbers
    done, planned = len(results["runs"]), arena_page.completeness(results)["planned"]
    assert f"{done} of {planned} planned runs" in html
    worse = sweep.worse_than_student(summary)
    assert (
        f"<strong>{len(worse['authors'])}</strong> loss" in html
        and f"<strong>{len(worse['swept'])}</strong> at the swept weight" in html
    )
    assert "CIFAR-100 or ImageNet" in html and results["command"].split(" &")[0] in html
    kd_paper = facts("kd").paper
    paper = (out / "catalogue" / "papers" / kd_paper / "index.html").read_text(encoding="utf-8")
    assert "Arena" in paper and "../arena/" in paper


def test_arena_page_language_rows_are_the_results_file(real):
    _, _, out = real
    results = json.loads((ROOT / "results" / "arena-lm.json").read_text(encoding="utf-8"))
    html = (out / "catalogue" / "arena" / "index.html").read_text(encoding="utf-8")
    parser = _ArenaRows(keys=("data-lm-loss", "data-lm-mode"))
    parser.feed(html)
    summary = results["summary"]
    assert {f"{loss}/{mode}" for loss, mode in parser.rows} == set(summary)
    for (loss, mode), numbers in parser.rows.items():
        e = summary[f"{loss}/{mode}"]
        means = [e[m]["mean"] for m in arena_page.LM_METRICS]
        assert numbers[: len(means)] == pytest.approx(means, abs=1e-5), (loss, mode)
        if "vs_student" in e["fkl"]:
            assert pytest.approx(e["fkl"]["vs_student"]["mean"], abs=1e-5) in numbers
    assert f"{len(results['runs'])} of {results['plan']['runs']} planned runs are done" in html
    for name in results["not_fitting"]:  # the language-model losses it cannot run, named
        assert f"<code>{name}</code> (needs " in html


def test_arena_page_without_results(small):
    catalogue, _, out, _ = small
    assert not (catalogue.root.parent / "results").exists()
    assert "No results file is committed yet" in (out / "catalogue/arena/index.html").read_text(
        encoding="utf-8"
    )


# -- the fast path: the same site as MkDocs alone, sooner ---------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("which", ["real", "small"])
def test_fast_build_is_the_plain_build(which, request):
    """Every file of ``kdsurvey build`` (fast path) is byte for byte what MkDocs alone builds from
    the same pages: HTML, search index (hostile strings included, in ``small``)."""
    project, out = request.getfixturevalue(which)[1:3]
    fast_dir, plain_dir = project.parent / f"fast-{which}", project.parent / f"plain-{which}"
    config = site.load_config(project / "mkdocs.yml", site_dir=str(fast_dir))
    plugin = site_mkdocs.run_mkdocs(config)
    site_mkdocs.run_mkdocs(
        site.load_config(project / "mkdocs.yml", site_dir=str(plain_dir)), fast=False
    )
    fast, plain = _files(fast_dir), _files(plain_dir)
    assert fast.keys() == plain.keys() and fast == _files(out)
    different = sorted(k for k in fast if fast[k] != plain[k])
    assert not different, different[:10]
    # and the fast path did the work: every paper page and listing page, no other page
    generated = project / "docs" / site.GENERATED
    expected = {
        f"{site.GENERATED}/{p.relative_to(generated).as_posix()}"
        for p in generated.rglob("*.md")
        if "kd_html: true" in p.read_text(encoding="utf-8")
    }
    assert set(plugin.rendered) == expected
    assert f"{site.GENERATED}/categories/logit.md" in expected
    assert which != "real" or f"{site.GENERATED}/papers/{DKD}.md" in expected


def test_fast_path_takes_only_headings_and_html_blocks():
    from kdsurvey.exporters.site.fastpath import split

    page = '# T\n\n<p class="a">x</p>\n\n## S { data-search-exclude }\n\n<div>\n<b>y</b>\n</div>\n'
    assert split(page) == [
        ("heading", "# T"),
        ("html", '<p class="a">x</p>'),
        ("heading", "## S { data-search-exclude }"),
        ("html", "<div>\n<b>y</b>\n</div>"),
    ]
    assert split("# T\n\nA paragraph of Markdown.\n") is None  # Markdown renders such a page
    assert split("# T\n\n<span>inline HTML</span>\n") is None  # Markdown wraps it in <p>
    assert split("# T\n## U\n") is None  # two headings in one block


def test_remembered_pages_are_the_rendered_pages(tmp_path):
    """``kdsurvey serve``'s memo gives what a fresh render gives, after an edit that reaches other
    pages (a title shown by the related papers), and reuses the pages that did not change."""
    papers = write_catalogue(tmp_path / "papers", 20)
    memo: dict = {}
    first = site.render_pages(View(load(papers), memo))
    assert first == site.render_pages(load(papers))
    kept = dict(memo["papers"])
    records = sorted(p for p in papers.glob("*.yaml") if p.name not in site_data_files())
    edited = records[3]
    text = edited.read_text(encoding="utf-8")
    edited.write_text(re.sub(r"(title: .*)", r"\1 Now Renamed", text, count=1), "utf-8")
    second = site.render_pages(View(load(papers), memo))
    assert second == site.render_pages(load(papers))
    changed = {k for k in second if second[k] != first[k]}
    assert f"papers/{edited.stem}.md" in changed
    shows_it = {
        path
        for path, page in second.items()
        if "Now Renamed" in page and path != f"papers/{edited.stem}.md"
    }
    assert len({k for k in changed if k.startswith("papers/")}) > 1 and shows_it
    for pid, (key, page) in memo["papers"].items():
        if f"papers/{pid}.md" not in changed:
            assert page is kept[pid][1], pid  # not rendered again


def test_serve_regeneration_follows_data_files(tmp_path):
    """A data file's edit reaches every page although the records did not change."""
    from kdsurvey.exporters.site.live import Regenerator

    papers = write_catalogue(tmp_path / "papers", 10)
    docs = tmp_path / "docs"
    messages: list[str] = []
    regenerate = Regenerator(papers, docs, site.Links(), messages.append)
    regenerate()
    catalogue = load(papers)
    short = catalogue.venues[catalogue.papers[0].venue].short  # a venue the records use
    shown = [
        p for p in (docs / site.GENERATED / "papers").glob("*.md") if f">{short} " in p.read_text()
    ]
    assert shown, f"no page shows {short}"
    venues = papers / "venues.yaml"
    text = venues.read_text(encoding="utf-8")
    assert text.count(f"short: {short}\n") == 1
    venues.write_text(text.replace(f"short: {short}\n", f"short: {short}-X\n"), "utf-8")
    regenerate()
    assert all(f">{short}-X " in p.read_text(encoding="utf-8") for p in shown)
    written = len(messages)
    regenerate()  # nothing changed: nothing read or written
    assert len(messages) == written


def test_rebuilds_in_one_process_compile_no_theme_template(small, monkeypatch, tmp_path):
    """``kdsurvey serve`` rebuilds with a new configuration each time: the theme's templates are
    compiled by the first build only (they were half of a rebuild at 1,000 papers)."""
    import jinja2

    project = tmp_path / "project"
    shutil.copytree(small[1], project)

    def build():
        config = site.load_config(project / "mkdocs.yml", site_dir=str(tmp_path / "public"))
        site_mkdocs.run_mkdocs(config)

    build()
    compiled = []
    real = jinja2.Environment.compile

    def spy(self, source, name=None, *args, **kwargs):
        compiled.append(name)
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", spy)
    build()
    # (Material's search plugin compiles its two language partials in an environment of its own)
    assert {"main.html", "base.html", "partials/header.html", "partials/source.html"}.isdisjoint(
        compiled
    ), compiled
    edited = project / "docs" / "overrides" / "partials" / "source.html"  # ours: compiled again
    edited.write_text(edited.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    build()
    assert "partials/source.html" in compiled
