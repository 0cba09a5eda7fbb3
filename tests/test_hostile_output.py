"""Every value a template shows is escaped: the real catalogue with a hostile string in every field
that the README or a site page prints (records, data files, the arena's results), rendered and built,
shows each as text. No tag, attribute, Markdown link, heading id or snippet gets through.
"""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
import yaml

from kdsurvey.exporters import readme, site
from kdsurvey.exporters.render import md_text
from kdsurvey.exporters.site.markdown import code_span
from kdsurvey.exporters.view import View
from kdsurvey.records.catalogue import load

ROOT = Path(__file__).resolve().parent.parent
TAG = "kd-x"  # an element no page has
ATTR = "data-kd-evil"  # an attribute no page has
PROSE = "catalogue/libraries/"  # the libraries' notes are Markdown prose (code, emphasis)
#: Breaks out of an attribute, opens a tag, a link, emphasis, a code span, a table cell, an
#: attribute list and a snippet; ends with an entity that must not be decoded.
EVIL = (
    f'"{ATTR}="1 \'{ATTR}=\'1 <{TAG} {ATTR}="1">*e* _u_ [l](javascript:x) `c` | '
    '{ #kd-evil } --8<-- "index.md" &lt;'
)
#: Record fields and data-file fields that are text (not keys, numbers or URLs).
TEXT_FIELDS = {
    "title",
    "summary",
    "notes",
    "volume",
    "number",
    "note",
    "method",
    "source",
    "short",
    "name",
    "publisher",
    "intro",
    "label",
    "path",
}


def _evil(value: str) -> str:
    return f"{value} {EVIL}"


def _poison(data, key=None):
    """``data`` with EVIL appended to every text field (and every unconfirmed sentence)."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if k == "unconfirmed" and isinstance(v, dict):
                out[k] = {f: _evil(s) for f, s in v.items()}
            elif k == "authors" and isinstance(v, list):
                out[k] = [a + " " + EVIL.replace(",", ";") for a in v]
            else:
                out[k] = _poison(v, k)
        return out
    if isinstance(data, list):
        return [_poison(v, key) for v in data]
    if isinstance(data, str) and key in TEXT_FIELDS:
        return _evil(data)
    return data


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The real catalogue poisoned, its README rendered and its site built."""
    tmp = tmp_path_factory.mktemp("hostile")
    papers = tmp / "papers"
    papers.mkdir()
    for path in sorted((ROOT / "papers").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name == "benchmarks.yaml":  # names and labels; keys stay keys
            for bench in data["benchmarks"].values():
                bench["name"] = _evil(bench["name"])
                for metric in bench["metrics"].values():
                    metric["label"] = _evil(metric["label"])
            for arch in data["architectures"].values():
                arch["label"] = _evil(arch["label"])
        elif path.name in ("categories.yaml", "tasks.yaml", "venues.yaml", "survey.yaml"):
            data = {
                k: _poison(v) if isinstance(v, dict) else (_evil(v) if k == "title" else v)
                for k, v in data.items()
            }
        elif path.name == "libraries.yaml":
            for lib in data.values():
                lib["losses"] = [{**e, "note": _evil(e.get("note") or "x")} for e in lib["losses"]]
                lib["losses"] = [{**e, "path": _evil(e["path"])} for e in lib["losses"]]
                lib["losses"] = [{**e, "name": _evil(e["name"])} for e in lib["losses"]]
        elif path.name in ("doi_prefixes.yaml", "robot_hosts.yaml"):
            pass
        else:
            data = _poison(data)
        (papers / path.name).write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    arena = json.loads((ROOT / "results/arena.json").read_text(encoding="utf-8"))
    arena["command"] = _evil(arena["command"])
    arena["config"]["device"] = _evil(arena["config"]["device"])
    arena["versions"] = {_evil(k): _evil(v) for k, v in arena["versions"].items()}
    arena["not_fitting"] = {_evil(k): _evil(v) for k, v in arena["not_fitting"].items()}
    for entries in arena["summary"].values():
        for entry in entries.values():
            entry.setdefault("error", None)
        next(iter(entries.values()))["error"] = _evil("boom")
    (tmp / "results").mkdir()
    (tmp / "results/arena.json").write_text(json.dumps(arena), "utf-8")
    view = View(load(papers))
    config = site.copy_project(tmp / "project")
    site.build(view, config, tmp / "public")
    return view, readme.render(view), tmp / "public"


class _Elements(HTMLParser):
    """Every tag, attribute name and id of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            self.attrs.add(name)
            if name == "id":
                self.ids.add(value or "")
            if name == "href":
                self.hrefs.append(value or "")

    def handle_data(self, data):
        self.text.append(data)


def _injected(html: str, prose: bool = False) -> list[str]:
    """What of EVIL got through as markup; ``prose``: the page shows Markdown prose of a data file
    (libraries.yaml's notes write `code` and *emphasis*), where emphasis is the text's own."""
    found = _Elements()
    found.feed(html)
    bad = [f"<{TAG}>"] if TAG in found.tags else []
    bad += [f"attribute {a}" for a in found.attrs if "kd-evil" in a]
    bad += [f"id {i}" for i in found.ids if i == "kd-evil"]
    bad += [f"href {h}" for h in found.hrefs if h.startswith("javascript:")]
    bad += ["em"] if not prose and ("<em>e</em>" in html or "<em>u</em>" in html) else []
    return bad


def test_every_built_page_shows_hostile_values_as_text(hostile):
    view, _, out = hostile
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > len(view.catalogue.papers)
    problems = {
        rel: bad
        for p in pages
        if (bad := _injected(p.read_text(), (rel := str(p.relative_to(out))).startswith(PROSE)))
    }
    assert not problems
    # not vacuous: the hostile text is shown, as text, where each kind of field appears
    shown = {
        "catalogue/papers/zhao2022decoupled/index.html",  # record fields, results, BibTeX
        "catalogue/categories/logit/index.html",  # the table rows, category intro
        "catalogue/venues/index.html",
        "catalogue/leaderboards/cifar100/index.html",  # benchmark and architecture labels
        "catalogue/libraries/index.html",
        "catalogue/arena/index.html",
        "catalogue/help/index.html",
        "index.html",
    }
    for rel in shown:
        found = _Elements()
        found.feed((out / rel).read_text(encoding="utf-8"))
        assert f"<{TAG} {ATTR}" in "".join(found.text), rel


def test_search_index_holds_no_hostile_markup(hostile):
    _, _, out = hostile
    index = json.loads((out / "search/search_index.json").read_text(encoding="utf-8"))
    for doc in index["docs"]:
        assert not _injected(doc["text"]) and not _injected(doc["title"]), doc["location"]


def test_readme_shows_hostile_values_as_text(hostile):
    view, text, _ = hostile
    html = markdown.markdown(text, extensions=["tables"])
    assert not _injected(html)
    found = _Elements()
    found.feed(html)
    assert f"<{TAG} {ATTR}" in "".join(found.text)


@pytest.mark.parametrize(
    "text",
    ["1. a list?", "2) another", "- an item?", "+ too", ": a definition?", "= rule", "~~x~~"],
)
def test_one_escaper_keeps_line_starts_as_text(text):
    """The README's and the site's one Markdown escaper, where a value starts a line."""
    out = markdown.markdown(md_text(text), extensions=["tables", "def_list", "attr_list"])
    assert html.unescape(out) == f"<p>{text}</p>"
    assert md_text("Teacher-Student (2x).") == "Teacher-Student (2x)."  # nothing to escape mid-line


@pytest.mark.parametrize("text", ["plain", "a`b", "`edge`", "x ``` y", "a|b"])
def test_code_spans_show_their_text(text):
    html = markdown.markdown(f"| {code_span(text)} |\n|---|\n", extensions=["tables"])
    assert f"<code>{text}</code>" in html
