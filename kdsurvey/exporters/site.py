"""The website: Markdown pages rendered from the records, then built by MkDocs (Material theme).

The hand-written pages, assets and theme overrides live in ``site/`` (``docs_dir`` of
``mkdocs.yml``). :func:`generate` renders the catalogue through ``templates/site/`` into the
git-ignored folder ``site/catalogue/``: one page per category, per paper, per venue and per task, a
``.bib`` file per paper, and the snippets the home page includes. It writes a file only when its
text changed and removes the files of records that are gone, so ``mkdocs serve`` and dirty builds
stay cheap. :func:`build` then runs MkDocs in this process, strict: any warning fails the build.

Everything here is torch-free: a loss's hyperparameters are read from its module's source with
:mod:`ast`, as :func:`kdsurvey.losses.registry.declared_names` reads the loss names.
"""

from __future__ import annotations

import ast
import bisect
import html
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from kdsurvey.exporters.render import environment, newest_first
from kdsurvey.files import write_atomic
from kdsurvey.losses.registry import EVIDENCE, declarations, declared_names
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper, Task

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "mkdocs.yml"
GENERATED = "catalogue"  # folder of generated pages inside docs_dir (git-ignored)
INCLUDES = "_include"  # snippets of the home page, inside GENERATED (excluded from the pages)
LOSSES_DIR = Path(__file__).resolve().parents[1] / "losses"
RELATED = 6  # related papers shown on a paper page
NEWEST = 8  # newest additions shown on the home page

TASK_LABELS = {
    Task.detection_3d.value: "3D detection",
    Task.nlp.value: "NLP",
}

# Python-Markdown's backslash escapes (tables add ``|``); ``& < > "`` become entities instead.
_MD_TABLE = str.maketrans(
    {
        **{c: "\\" + c for c in "\\`*_{}[]()#+-.!|"},
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
    }
)
_SPACE = re.compile(r"\s\s|[^\S ]")  # whitespace other than single spaces
_SPACES = re.compile(r"\s+")
_DOC_CODE = re.compile(r"(?::\w+:)?``?([^`]+?)``?")


# -- escaping ---------------------------------------------------------------------------------


def md_text(value) -> str:
    """User text as Markdown that Python-Markdown renders exactly as written, on one line.

    Markdown syntax is backslash-escaped and ``& < > "`` become entities, so no markup, link,
    HTML or snippet directive in a record survives as anything but text.
    """
    text = str(value)
    if _SPACE.search(text):
        text = _SPACES.sub(" ", text)
    return text.translate(_MD_TABLE)


@lru_cache(maxsize=4096)
def doc_text(value) -> str:
    """Docstring text (of our own losses): ``code`` and :role:`code` become code spans."""
    parts = _DOC_CODE.split(_SPACES.sub(" ", str(value)))
    return "".join(md_text(part) if i % 2 == 0 else f"`{part}`" for i, part in enumerate(parts))


def fence(code: str) -> str:
    """A code fence longer than any run of backticks in ``code``, so nothing in it closes it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)


def html_text(value) -> str:
    """User text for raw HTML (tables, attributes): every special character an entity."""
    return html.escape(" ".join(str(value).split()), quote=True)


def url(value) -> str:
    """An external URL safe inside Markdown ``(...)`` and HTML attributes (percent-encoded)."""
    return quote(str(value), safe=":/?#@!$&'*+,;=%~-._[]")


def front_matter(value) -> str:
    """A YAML scalar for the front matter (JSON strings are YAML); HTML-escaped like a title."""
    return json.dumps(html_text(value), ensure_ascii=False)


def task_label(task) -> str:
    value = getattr(task, "value", task)
    return TASK_LABELS.get(value, value.replace("-", " ").capitalize())


def slug(key: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", key.lower()).strip("-") or "venue"


# -- losses, read from source -----------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str
    default: str | None  # source text of the default; None when required
    doc: str


@dataclass(frozen=True)
class LossInfo:
    """What the site shows about a registered loss, read from its module without importing it."""

    name: str
    cls: str
    module: str  # file name in kdsurvey/losses/
    line: int  # of the register(...) decorator
    params: tuple[Param, ...]
    inputs: tuple[str, ...]  # forward() arguments
    summary: str
    evidence: str  # a key of kdsurvey.losses.registry.EVIDENCE
    notes: str  # the docstring paragraphs saying what was checked against what, or inferred


def _docstring_args(doc: str) -> dict[str, str]:
    """``name: text`` entries of the ``Args:`` section of a Google-style docstring."""
    args: dict[str, str] = {}
    lines = doc.splitlines()
    inside, current, indent = False, None, None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not stripped:
            current = None
            continue
        level = len(line) - len(line.lstrip())
        if indent is None:
            indent = level
        if level < indent or (level == indent and stripped.endswith(":") and " " not in stripped):
            inside = False
            continue
        match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
        if level == indent and match:
            current = match.group(1)
            args[current] = match.group(2)
        elif current:
            args[current] += " " + stripped
    return args


@cache
def _classes(module: str) -> dict[str, ast.ClassDef]:
    tree = ast.parse((LOSSES_DIR / module).read_text(encoding="utf-8"))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _method(cls: ast.ClassDef, name: str, module: str, seen=()) -> ast.FunctionDef | None:
    """``cls.name``, or the one it inherits from a base class of its module or of base.py."""
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name == name:
            return item
    for base in cls.bases:
        if not isinstance(base, ast.Name) or base.id in seen:
            continue
        for where in (module, "base.py"):
            parent = _classes(where).get(base.id) if (LOSSES_DIR / where).exists() else None
            if parent is not None:
                found = _method(parent, name, where, (*seen, base.id))
                if found is not None:
                    return found
                break
    return None


@cache
def _module_losses(module: str) -> dict[str, LossInfo]:
    found = {}
    for node in _classes(module).values():
        for deco in node.decorator_list:
            if not (
                isinstance(deco, ast.Call)
                and isinstance(deco.func, ast.Name)
                and deco.func.id == "register"
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                continue
            doc = ast.get_docstring(node) or ""
            init = _method(node, "__init__", module)
            forward = _method(node, "forward", module)
            inputs: tuple[str, ...] = ()
            if forward is not None:
                positional = forward.args.posonlyargs + forward.args.args
                required = len(positional) - len(forward.args.defaults)
                inputs = tuple(a.arg for a in positional[1:required])
            name = deco.args[0].value
            found[name] = LossInfo(
                name=name,
                cls=node.name,
                module=module,
                line=deco.lineno,
                params=tuple(_params(init.args, _docstring_args(doc))) if init else (),
                inputs=inputs,
                summary=doc.split("\n\n", 1)[0].replace("\n", " ") if doc else "",
                evidence=declarations()[name].evidence,
                notes=_provenance(doc),
            )
    return found


_PROVENANCE = re.compile(r"official|[Ii]nferred|UNCERTAIN|[Nn]o code|[Cc]hecked|re-implementation")


def _provenance(doc: str) -> str:
    """The docstring's paragraphs that say what was checked against what, or what was inferred
    (the site shows them so a reader can judge a loss without opening its source)."""
    paragraphs = doc.split("\n\n")[1:]
    return " ".join(
        p.strip()
        for p in paragraphs
        if _PROVENANCE.search(p) and not p.lstrip().startswith("Args:") and ".. math::" not in p
    )


def _params(args: ast.arguments, described: dict[str, str]) -> list[Param]:
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True))[1:]  # drop self
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    return [
        Param(
            name=arg.arg,
            annotation=ast.unparse(arg.annotation) if arg.annotation is not None else "",
            default=ast.unparse(default) if default is not None else None,
            doc=described.get(arg.arg, ""),
        )
        for arg, default in pairs
    ]


def loss_info(name: str) -> LossInfo | None:
    """The class, hyperparameters (with defaults) and inputs of loss ``name``, from source."""
    module = declared_names().get(name)
    if module is None:
        return None
    return _module_losses(module).get(name)


# -- the pages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where the site's "edit" and "source" buttons point."""

    repo_url: str | None = None
    branch: str = "main"
    root: Path = ROOT  # repository root, to express record paths

    def edit(self, path: Path | str) -> str | None:
        return f"{self.repo_url}/edit/{self.branch}/{self._rel(path)}" if self.repo_url else None

    def blob(self, path: Path | str) -> str | None:
        return f"{self.repo_url}/blob/{self.branch}/{self._rel(path)}" if self.repo_url else None

    def _rel(self, path: Path | str) -> str:
        path = Path(path)
        if not path.is_absolute():
            return path.as_posix()
        folder = self._folder(path.parent)
        # A catalogue outside the repository (synthetic) is named as papers/.
        return f"{folder}/{path.name}" if folder else f"papers/{path.name}"

    @lru_cache(maxsize=64)  # noqa: B019 - a handful of folders, Links lives as long as a build
    def _folder(self, folder: Path) -> str | None:
        try:
            return folder.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None

    @classmethod
    def from_config(cls, config) -> Links:
        """Repository and branch from ``repo_url`` and ``edit_uri`` (``edit/<branch>/...``)."""
        repo = (config.get("repo_url") or "").rstrip("/") or None
        edit_uri = config.get("edit_uri") or ""
        match = re.match(r"^(?:edit|blob|tree)/([^/]+)/", urlsplit(edit_uri).path.lstrip("/"))
        root = Path(config.config_file_path).resolve().parent if config.config_file_path else ROOT
        return cls(repo, match.group(1) if match else "main", root)


@dataclass
class Generated:
    """What :func:`generate` did: relative paths written, unchanged and removed."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0  # rendering and writing the pages
    site_seconds: float = 0.0  # MkDocs, when :func:`build` ran it


class SiteError(Exception):
    """The site stage failed; ``messages`` are the warnings/errors MkDocs reported."""

    def __init__(self, messages: list[str]):
        super().__init__(f"{len(messages)} site error(s)")
        self.messages = messages


def _site_env():
    env = environment().overlay()
    env.filters = dict(env.filters)
    env.filters.update(
        text=md_text,
        doc=doc_text,
        html=html_text,
        url=url,
        fm=front_matter,
        fence=fence,
        task=task_label,
        slug=slug,
    )
    env.globals = dict(env.globals)
    return env


def _related(catalogue: Catalogue) -> dict[str, list[Paper]]:
    """Up to RELATED papers of the same category sharing a task, nearest in year; O(n log n).

    Each paper looks around its own position in the year-sorted list of every (category, task)
    it belongs to, so the work per paper is bounded whatever the catalogue's size.
    """
    buckets: dict[tuple[str, str], list[Paper]] = defaultdict(list)
    for p in catalogue.papers:
        for t in p.tasks:
            buckets[(p.category.value, t.value)].append(p)
    keys = {}
    for key, papers in buckets.items():
        papers.sort(key=lambda p: (p.year, p.id))
        keys[key] = [(p.year, p.id) for p in papers]
    related = {}
    for p in catalogue.papers:
        chosen: dict[str, tuple[int, int, Paper]] = {}
        for rank, t in enumerate(p.tasks):
            key = (p.category.value, t.value)
            papers, index = buckets[key], bisect.bisect_left(keys[key], (p.year, p.id))
            lo, hi = max(0, index - RELATED), min(len(papers), index + RELATED + 1)
            for q in papers[lo:hi]:
                if q.id != p.id:
                    score = (abs(q.year - p.year), rank)
                    if q.id not in chosen or score < chosen[q.id][:2]:
                        chosen[q.id] = (*score, q)
        best = sorted(chosen.values(), key=lambda c: (c[0], c[1], -c[2].year, c[2].id))
        related[p.id] = newest_first([c[2] for c in best[:RELATED]])
    return related


def added_order(catalogue: Catalogue) -> dict[str, int]:
    """id -> commit time (seconds) at which the record was added, from git; {} without history."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(catalogue.root),
                "log",
                "--diff-filter=A",
                "--format=%x00%ct",
                "--name-only",
                "--relative",
                "--",
                ".",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    added: dict[str, int] = {}
    for chunk in out.split("\x00")[1:]:
        lines = chunk.strip().splitlines()
        if not lines or not lines[0].isdigit():
            continue
        stamp, *names = lines
        for name in names:
            stem = Path(name.strip()).stem
            if name.endswith(".yaml") and stem:
                added.setdefault(stem, int(stamp))  # newest commit comes first
    return added


def newest_additions(catalogue: Catalogue, count: int = NEWEST) -> list[Paper]:
    """The papers most recently added to the catalogue (git); records not committed yet first."""
    added = added_order(catalogue)
    order = {p.id: i for i, p in enumerate(newest_first(catalogue.papers))}
    return sorted(catalogue.papers, key=lambda p: (-added.get(p.id, 2**62), order[p.id]))[:count]


def _chart(catalogue: Catalogue) -> dict:
    """Geometry of the home page's stacked bar chart: papers per year by category (inline SVG)."""
    counts = Counter((p.year, p.category.value) for p in catalogue.papers)
    if not counts:
        return {"bars": [], "width": 0, "height": 0, "ticks": [], "labels": []}
    years = list(range(min(y for y, _ in counts), max(y for y, _ in counts) + 1))
    cats = list(catalogue.categories)
    totals = {y: sum(counts[(y, c)] for c in cats) for y in years}
    top = max(totals.values())
    step = next(
        s
        for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10**9)
        if top / s <= 6
    )
    top = -(-top // step) * step
    left, right, head, foot, plot_h = 40, 10, 10, 24, 200
    bar_w = max(8, min(36, 680 // len(years)))
    gap = max(2, bar_w // 4)
    width = left + len(years) * (bar_w + gap) + right
    scale = plot_h / top
    bars, labels = [], []
    every = 1 if len(years) <= 16 else 2 if len(years) <= 32 else 5
    for i, y in enumerate(years):
        x = left + i * (bar_w + gap) + gap / 2
        base = head + plot_h
        for c in cats:
            n = counts[(y, c)]
            if n:
                h = n * scale
                base -= h
                bars.append(
                    {
                        "x": x,
                        "y": round(base, 2),
                        "w": bar_w,
                        "h": round(h, 2),
                        "category": c,
                        "year": y,
                        "count": n,
                    }
                )
        if i % every == 0 or y == years[-1]:
            labels.append({"x": x + bar_w / 2, "y": head + plot_h + 16, "text": y})
    ticks = [
        {"y": round(head + plot_h - v * scale, 2), "value": v} for v in range(0, top + 1, step)
    ]
    return {
        "bars": bars,
        "width": width,
        "height": head + plot_h + foot,
        "left": left,
        "ticks": ticks,
        "labels": labels,
        "right": width - right,
        "total": len(catalogue.papers),
        "first": years[0],
        "last": years[-1],
    }


def _bibtex(catalogue: Catalogue) -> tuple[dict[str, str], str] | None:
    """Per-id BibTeX entries and the whole file, from :mod:`kdsurvey.exporters.citations` (if present)."""
    try:
        from kdsurvey.exporters.citations import bibtex
    except ImportError:
        return None
    text = bibtex(catalogue, catalogue.papers)
    entries = {}
    for chunk in re.split(r"\n(?=@)", text):
        match = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", chunk)
        if match:
            entries[match.group(1)] = chunk.strip() + "\n"
    return entries, text if text.endswith("\n") else text + "\n"


def render_pages(catalogue: Catalogue, links: Links | None = None) -> dict[str, str]:
    """Every generated file: path relative to the generated folder -> text. Pure and ordered."""
    links = links or Links()
    env = _site_env()
    t_paper = env.get_template("site/paper.md.j2")
    t_list = env.get_template("site/list.md.j2")
    venues = catalogue.venues
    by_year = newest_first(catalogue.papers)
    related = _related(catalogue)
    cites = _bibtex(catalogue)
    categories = catalogue.categories
    venue_slugs: dict[str, str] = {}
    for key in sorted(venues):
        s = slug(key)
        while s in venue_slugs.values():
            s += "-"
        venue_slugs[key] = s
    losses = {name: loss_info(name) for p in catalogue.papers for name in p.loss}
    t_loss = env.get_template("site/loss.md.j2")
    loss_blocks = {
        name: t_loss.render(name=name, info=info, source=links.blob, evidence=EVIDENCE).strip("\n")
        for name, info in losses.items()
    }
    common = {
        "venues": venues,
        "categories": categories,
        "venue_slugs": venue_slugs,
        "links": links,
        "losses": losses,
        "loss_blocks": loss_blocks,
    }
    pages: dict[str, str] = {}

    row = env.get_template("site/_table.html.j2").module.row
    rows = {p.id: str(row(p, venues[p.venue], venue_slugs[p.venue])) for p in by_year}
    by_category = {key: [p for p in by_year if p.category.value == key] for key in categories}
    for key, info in categories.items():
        pages[f"categories/{key}.md"] = t_list.render(
            common,
            kind="category",
            key=key,
            info=info,
            rows=[rows[p.id] for p in by_category[key]],
            edit_url=links.edit(catalogue.root / "categories.yaml"),
        )

    by_venue: dict[str, list[Paper]] = defaultdict(list)
    by_task: dict[str, list[Paper]] = defaultdict(list)
    for p in by_year:
        by_venue[p.venue].append(p)
        for t in p.tasks:
            by_task[t.value].append(p)
    for key, papers in by_venue.items():
        pages[f"venues/{venue_slugs[key]}.md"] = t_list.render(
            common,
            kind="venue",
            key=key,
            info=venues[key],
            rows=[rows[p.id] for p in papers],
            edit_url=links.edit(catalogue.root / "venues.yaml"),
        )
    for key, papers in by_task.items():
        pages[f"tasks/{key}.md"] = t_list.render(
            common,
            kind="task",
            key=key,
            info=None,
            rows=[rows[p.id] for p in papers],
            edit_url=None,
        )
    index = env.get_template("site/index.md.j2")
    venue_rows = sorted(by_venue.items(), key=lambda kv: (-len(kv[1]), venues[kv[0]].short))
    pages["venues/index.md"] = index.render(common, kind="venue", rows=venue_rows)
    task_rows = sorted(by_task.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    pages["tasks/index.md"] = index.render(common, kind="task", rows=task_rows)

    for p in catalogue.papers:
        entry = cites[0].get(p.id) if cites else None
        pages[f"papers/{p.id}.md"] = t_paper.render(
            common,
            p=p,
            venue=venues[p.venue],
            category=categories[p.category.value],
            related=related[p.id],
            bibtex=entry,
            edit_url=links.edit(catalogue.path_of(p)),
        )
        if entry:
            pages[f"papers/{p.id}.bib"] = entry
    if cites:
        pages["kdsurvey.bib"] = cites[1]

    home = env.get_template("site/home.md.j2")
    years = [p.year for p in catalogue.papers]
    stats = {
        "papers": len(catalogue.papers),
        "categories": len(categories),
        "venues": len(by_venue),
        "with_code": sum(1 for p in catalogue.papers if p.links.code),
        "losses": len({n for p in catalogue.papers for n in p.loss}),
        "first": min(years, default=None),
        "last": max(years, default=None),
    }
    for part in ("stats", "chart", "newest", "cite"):
        pages[f"{INCLUDES}/home-{part}.md"] = home.render(
            common,
            part=part,
            stats=stats,
            chart=_chart(catalogue),
            by_category=by_category,
            newest=newest_additions(catalogue),
            has_bib=cites is not None,
        )
    return pages


def generate(catalogue: Catalogue, docs_dir: Path | str, links: Links | None = None) -> Generated:
    """Write the generated pages into ``docs_dir/catalogue``: changed files only, stale removed."""
    start = time.perf_counter()
    out = Path(docs_dir) / GENERATED
    pages = render_pages(catalogue, links)
    result = Generated()
    existing = (
        {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        if out.is_dir()
        else set()
    )
    for rel, text in pages.items():
        path = out / rel
        if rel in existing:
            try:
                if path.read_text(encoding="utf-8") == text:
                    result.unchanged += 1
                    continue
            except (OSError, UnicodeDecodeError):
                pass
        write_atomic(path, text)
        result.written.append(rel)
    for rel in sorted(existing - pages.keys()):
        (out / rel).unlink()
        result.removed.append(rel)
    for folder in sorted((d for d in out.rglob("*") if d.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    result.seconds = time.perf_counter() - start
    return result


def copy_project(dest: Path | str, config_file: Path | str = CONFIG) -> Path:
    """Copy ``mkdocs.yml`` and the hand-written ``site/`` (not its generated pages) to ``dest``.

    Tests and benchmarks build synthetic catalogues there, leaving the working tree alone.
    Returns the copied configuration file.
    """
    import shutil

    config_file = Path(config_file).resolve()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(config_file, dest / config_file.name)
    docs = config_file.parent / "site"
    shutil.copytree(
        docs,
        dest / "site",
        dirs_exist_ok=True,
        ignore=lambda folder, names: [GENERATED] if Path(folder) == docs else [],
    )
    return dest / config_file.name


# -- MkDocs -----------------------------------------------------------------------------------


def load_config(config_file: Path | str = CONFIG, **overrides):
    """The MkDocs configuration, with snippet paths made absolute (builds from any directory)."""
    from mkdocs.config import load_config as mkdocs_load_config

    config_file = Path(config_file).resolve()
    config = mkdocs_load_config(str(config_file), **overrides)
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets and "base_path" in snippets:
        paths = snippets["base_path"]
        paths = [paths] if isinstance(paths, str) else paths
        snippets["base_path"] = [str(config_file.parent / p) for p in paths]
    return config


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def build(
    catalogue: Catalogue,
    config_file: Path | str = CONFIG,
    site_dir: Path | str | None = None,
    *,
    strict: bool = True,
    **overrides,
) -> Generated:
    """Generate the pages, then build the site with MkDocs; :class:`SiteError` on any warning.

    ``overrides`` replace settings of the configuration (``site_url=...`` for a local server:
    Material's instant navigation follows only the links its sitemap lists).
    """
    overrides["strict"] = strict
    if site_dir is not None:
        overrides["site_dir"] = str(Path(site_dir).resolve())
    config = load_config(config_file, **overrides)
    generated = generate(catalogue, config.docs_dir, Links.from_config(config))
    start = time.perf_counter()
    # Build beside the output folder and swap it in only when the build passed: a failed build
    # leaves the previous site whole, never a half-written one.
    target = Path(config.site_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a site is for reading
    config["site_dir"] = str(staging)
    try:
        run_mkdocs(config)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        config["site_dir"] = str(target)
    previous = staging.with_name(staging.name + ".old")
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    generated.site_seconds = time.perf_counter() - start
    return generated


def run_mkdocs(config) -> None:
    """``mkdocs build`` in this process; warnings (all of them, strict) raise :class:`SiteError`."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.exceptions import MkDocsException

    collect = _Collect()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(collect)
    try:
        mkdocs_build(config)
    except MkDocsException as exc:
        raise SiteError([*collect.messages, f"ERROR: {exc}"]) from None
    finally:
        logger.removeHandler(collect)
    if collect.messages and config.strict:
        raise SiteError(collect.messages)


# -- serve ------------------------------------------------------------------------------------


class _Regenerator:
    """Regenerate the pages (debounced) when a record, a data file or a template changes."""

    def __init__(self, papers: Path, docs_dir: Path, links: Links, log):
        self.papers, self.docs_dir, self.links, self.log = papers, docs_dir, links, log
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def changed(self, path: str) -> None:
        if not path.endswith((".yaml", ".j2")) or Path(path).name.startswith("."):
            return
        with self._lock:
            if self._timer:
                self._timer.cancel()
            self._timer = threading.Timer(0.3, self.run)
            self._timer.daemon = True
            self._timer.start()

    def run(self) -> None:
        from kdsurvey.records.catalogue import CatalogueError, load

        environment.cache_clear()  # templates may have changed
        try:
            catalogue = load(self.papers)
        except CatalogueError as exc:
            self.log(
                "\n".join(map(str, exc.problems)) + f"\n{len(exc.problems)} error(s); "
                "the site keeps the last valid pages"
            )
            return
        try:
            result = generate(catalogue, self.docs_dir, self.links)
        except Exception as exc:  # noqa: BLE001 - a template error must not stop the server
            self.log(f"page generation failed: {exc}")
            return
        if result.written or result.removed:
            self.log(f"regenerated {len(result.written)} page(s), removed {len(result.removed)}")


def serve(
    papers: Path | str = "papers",
    config_file: Path | str = CONFIG,
    dev_addr: str = "127.0.0.1:8000",
    *,
    dirty: bool = False,
    log=print,
) -> None:
    """Generate the pages, then ``mkdocs serve`` with live reload; regenerate on record changes."""
    from mkdocs.commands.serve import serve as mkdocs_serve
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    from kdsurvey.records.catalogue import load

    config_file = Path(config_file).resolve()
    papers = Path(papers).resolve()
    config = load_config(config_file)
    docs_dir = Path(config.docs_dir)
    links = Links.from_config(config)
    generate(load(papers), docs_dir, links)
    regen = _Regenerator(papers, docs_dir, links, log)

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if not event.is_directory:
                regen.changed(str(getattr(event, "dest_path", "") or event.src_path))

    observer = Observer()
    handler = Handler()
    observer.schedule(handler, str(papers), recursive=False)
    templates = Path(environment().loader.searchpath[0])
    observer.schedule(handler, str(templates), recursive=True)
    observer.daemon = True
    observer.start()
    logger = logging.getLogger("mkdocs")
    if not logger.handlers:  # the mkdocs CLI would set this up: show "Serving on ..." and rebuilds
        handler_ = logging.StreamHandler()
        handler_.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
        logger.addHandler(handler_)
        logger.setLevel(logging.INFO)
    os.chdir(config_file.parent)  # mkdocs resolves snippet paths from the working directory
    try:
        mkdocs_serve(str(config_file), dev_addr=dev_addr, build_type="dirty" if dirty else None)
    finally:
        observer.stop()
