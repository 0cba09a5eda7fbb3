"""The generated pages: the catalogue rendered through ``kdsurvey/templates/site/``, then written.

:func:`render_pages` is pure (a :class:`~kdsurvey.exporters.view.View` of the catalogue in,
``{relative path: text}`` out, same input, same bytes);
:func:`generate` writes the pages into ``<docs_dir>/catalogue/``, only those whose text changed,
and removes the pages of records that are gone, so ``mkdocs serve`` and dirty builds stay cheap.
A loss's block on the paper pages comes from the losses' manifest (:mod:`..loss_facts`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

from kdsurvey.exporters import arena_page, leaderboard, usage
from kdsurvey.exporters.evidence import SCOPE
from kdsurvey.exporters.evidence import sentence as checked_against
from kdsurvey.exporters.help_page import render_help
from kdsurvey.exporters.loss_facts import EVIDENCE
from kdsurvey.exporters.render import environment, md_text, newest_first, url
from kdsurvey.exporters.site.chart import chart
from kdsurvey.exporters.site.links import Links
from kdsurvey.exporters.site.markdown import (
    bibtex_data_url,
    code_span,
    doc_html,
    doc_text,
    fence,
    front_matter,
    html_text,
    inline_html,
    mathml,
    paragraph_list,
    slug,
    task_label,
    task_lower,
)
from kdsurvey.exporters.site.related import related
from kdsurvey.exporters.view import View
from kdsurvey.files import write_atomic
from kdsurvey.losses import conventions
from kdsurvey.records import libraries
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper

CONVENTIONS_PATH = "kdsurvey/losses/conventions.yaml"  # for the page's edit link
GENERATED = "catalogue"  # folder of generated pages inside docs_dir (git-ignored)
INCLUDES = "_include"  # snippets of the home page, inside GENERATED (excluded from the pages)


@dataclass
class Generated:
    """What :func:`generate` did: relative paths written, unchanged and removed."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0  # rendering and writing the pages
    site_seconds: float = 0.0  # MkDocs, when :func:`build` ran it


@cache
def _site_env():
    """The site's environment: compiled once per process (Jinja reloads an edited template)."""
    env = environment().overlay()
    env.filters = dict(env.filters)
    env.filters.update(
        text=md_text,
        doc=doc_text,
        doc_html=doc_html,
        bibtex_data_url=bibtex_data_url,
        paragraph_list=paragraph_list,
        html=html_text,
        url=url,
        fm=front_matter,
        fence=fence,
        code=code_span,
        slug=slug,
    )
    env.globals = dict(env.globals)
    return env


def render_pages(source: View | Catalogue, links: Links | None = None) -> dict[str, str]:
    """Every generated file: path relative to the generated folder -> text. Pure and ordered.

    The view's ``memo`` (a dict kept between calls, as ``kdsurvey serve`` does) remembers each
    paper page and BibTeX entry with everything it shows, and renders again only those whose
    inputs changed. The caller clears it when anything but a record changed (a data file, a
    template).
    """
    view = View.of(source)
    catalogue, memo = view.catalogue, view.memo
    links = links or Links()
    env = _site_env()
    env.filters.update(  # task titles are the catalogue's data (papers/tasks.yaml)
        task=partial(task_label, tasks=catalogue.tasks),
        task_lower=partial(task_lower, tasks=catalogue.tasks),
    )
    t_paper = env.get_template("site/paper.md.j2")
    t_list = env.get_template("site/list.md.j2")
    venues = catalogue.venues
    by_year = newest_first(catalogue.papers)
    related_papers = related(catalogue)
    categories = catalogue.categories
    venue_slugs: dict[str, str] = {}
    for key in sorted(venues):
        s = slug(key)
        while s in venue_slugs.values():
            s += "-"
        venue_slugs[key] = s
    losses = view.losses
    by_id = {p.id: p for p in catalogue.papers}
    evidence = {
        name: checked_against(info, by_id.get(info.paper)) if info else None
        for name, info in losses.items()
    }
    evidence_html = {name: inline_html(text) for name, text in evidence.items() if text}
    common = {
        "venues": venues,
        "categories": categories,
        "venue_slugs": venue_slugs,
        "links": links,
        "losses": losses,
        "evidence_html": evidence_html,
        "scope": SCOPE,
        "papers_by_id": by_id,
    }
    pages: dict[str, str] = {}
    users: dict[str, list[Paper]] = defaultdict(list)
    for p in by_year:
        for name in p.loss:
            users[name].append(p)
    # Search ranks a paper higher the more papers build on or compare against its losses (a
    # paper listing one, or reporting it as a baseline): KD's and DKD's papers above the papers
    # citing them, whose rarer words would otherwise win. A loss page gets half its paper's boost.
    reused: dict[str, set[str]] = defaultdict(set)
    baselines: dict[str, set[str]] = defaultdict(set)
    for q in catalogue.papers:
        for r in q.results:
            if r.baseline:
                baselines[r.baseline].add(q.id)
    for name, info in losses.items():
        if info:
            reused[info.paper].update(q.id for q in users[name] if q.id != info.paper)
            reused[info.paper].update(baselines[name] - {info.paper})
    boost = {pid: 1 + min(len(ids), 8) / 4 for pid, ids in reused.items() if ids}
    t_loss = env.get_template("site/loss.md.j2")
    for name, info in losses.items():
        pages[f"losses/{slug(name)}.md"] = t_loss.render(
            common,
            boost=0.5 * boost.get(info.paper, 1) if info else 0.5,
            name=name,
            info=info,
            info_description=info.description if info else "",
            info_math=[mathml(m, display=True) for m in info.math] if info else [],
            papers=users[name],
            source=links.blob,
            usage=_usage(name, info) if info else "",
        )
    pages["losses/index.md"] = env.get_template("site/losses.md.j2").render(
        common,
        levels=EVIDENCE,
        users=users,
        paper_titles={p.id: p.title for p in catalogue.papers},
    )

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
            by_task[t].append(p)
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

    arena = view.arena
    arena_rows = arena_page.rows(arena, catalogue) if arena else []
    pages["arena.md"] = arena_page.page(
        env,
        catalogue,
        arena,
        links.edit(arena_page.RESULTS) if arena else None,
        view.language_arena,
    )
    for p in catalogue.papers:
        inputs = {
            "p": p,
            "venue": venues[p.venue],
            "category": categories[p.category.value],
            "related": related_papers[p.id],
            "bibtex": view.bibtex.get(p.id),
            "edit_url": links.edit(catalogue.path_of(p)),
            "results": leaderboard.paper_rows(catalogue, p),
            "arena": arena_page.paper_rows(arena_rows, p.id),
            "boost": boost.get(p.id),
        }
        if memo is None:
            pages[f"papers/{p.id}.md"] = t_paper.render(common, **inputs)
        else:
            pages[f"papers/{p.id}.md"] = _remembered(memo, t_paper, common, inputs, by_id)
    if view.bibtex:
        pages["kdsurvey.bib"] = view.bibtex_file
    pages["help.md"] = render_help(env, catalogue, links)

    pages["libraries.md"] = _libraries_page(env, view, links, common)
    pages["conventions.md"] = _conventions_page(env, links, common)

    home = env.get_template("site/home.md.j2")
    counts = view.counts
    stats = {
        "papers": counts.papers,
        "categories": len(categories),
        "venues": len(by_venue),
        "with_code": counts.with_code,
        "losses": counts.losses,
        "levels": counts.levels,
        "unconfirmed": counts.unconfirmed,
        "first": min(counts.years, default=None),
        "last": max(counts.years, default=None),
        "results": sum(len(p.results) for p in catalogue.papers),
        "result_papers": sum(1 for p in catalogue.papers if p.results),
        "benchmarks": len({r.benchmark for p in catalogue.papers for r in p.results}),
        "arena": arena_page.completeness(arena) if arena else None,
    }
    newest = view.newest()
    home_rows = [str(row(p, venues[p.venue], venue_slugs[p.venue], "catalogue/")) for p in by_year]
    for part in ("stats", "chart", "tasks", "newest", "cite", "papers"):
        pages[f"{INCLUDES}/home-{part}.md"] = home.render(
            common,
            part=part,
            rows=home_rows,
            stats=stats,
            chart=chart(catalogue),
            by_category=by_category,
            task_rows=task_rows,
            newest=newest,
            has_bib=bool(view.bibtex),
        )
    pages.update(leaderboard.pages(catalogue, env))
    return pages


def _usage(name: str, info) -> str:
    """The loss page's usage example (:func:`kdsurvey.exporters.usage.code`), highlighted as the
    site's code blocks are (Pygments); no blank line, so that it stays one raw HTML block
    (:mod:`.fastpath`)."""
    return _python_html(usage.code(name, info))


@cache
def _python_html(code: str) -> str:
    """Python code highlighted once per process (``kdsurvey serve`` renders pages again)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(code, PythonLexer(), HtmlFormatter(wrapcode=True)).strip()


def _remembered(memo: dict, template, common: dict, inputs: dict, by_id: dict) -> str:
    """A paper page from ``memo`` when nothing it shows changed, else rendered and remembered.

    The key is what the page shows: the record (its results included), the titles, venues and
    years of the other records it names (related papers, the papers whose losses it uses), what
    its losses were checked against (which depends on their papers' code links), and the small
    inputs. The data files (venue, category, benchmark and task names) and templates
    are the caller's to watch: it clears ``memo`` when one changes.
    """
    p = inputs["p"]
    others = [q for q, _ in inputs["related"]]
    others += [
        by_id[i.paper] for n in p.loss if (i := common["losses"].get(n)) and i.paper in by_id
    ]
    key = (
        p.model_dump_json(),
        [(q.id, q.title, q.venue, q.year) for q in others],
        [why for _, why in inputs["related"]],
        [common["evidence_html"].get(n) for n in p.loss],  # from the losses' own records
        (inputs["bibtex"], inputs["edit_url"], inputs["boost"]),
        repr([{k: v for k, v in row.items() if k != "paper"} for row in inputs["arena"]]),
    )
    pages = memo.setdefault("papers", {})
    if pages.get(p.id, (None,))[0] != key:
        pages[p.id] = (key, template.render(common, **inputs))
    return pages[p.id][1]


def _libraries_page(env, view: View, links: Links, common: dict) -> str:
    """The library coverage page, from ``libraries.yaml`` beside the records (empty without one).

    The evidence of each match comes from the losses' manifest (:func:`libraries.rows`).
    """
    found = view.libraries
    groups = []
    if found is not None:
        rows = libraries.rows(found)
        # a loss links to its own page, when a paper of this catalogue names it
        for lib in found:
            mine = [
                (r, f"losses/{slug(r.loss)}.md")
                if r.loss and common["losses"].get(r.loss)
                else (r, None)
                for r in rows
                if r.library == lib.name
            ]
            covered = sum(1 for r, _ in mine if r.loss)
            groups.append(
                {
                    "name": lib.name,
                    "repo": lib.repo,
                    "commit": lib.commit,
                    "rows": mine,
                    "covered": covered,
                }
            )
    return env.get_template("site/libraries.md.j2").render(
        common,
        libraries=groups,
        edit_url=links.edit(view.libraries_path) if found is not None else None,
    )


def _conventions_page(env, links: Links, common: dict) -> str:
    """The conventions page: ``kdsurvey/losses/conventions.yaml`` grouped by topic; a loss links
    to its page when a paper of this catalogue names it."""

    def href(name: str) -> str | None:
        return f"losses/{slug(name)}.md" if common["losses"].get(name) else None

    groups = defaultdict(list)
    for row in conventions.load():
        groups[row.topic].append((row, href(row.a.loss), href(row.b.loss)))
    ordered = [(topic, groups[topic]) for topic in conventions.TOPICS if groups[topic]]
    return env.get_template("site/conventions.md.j2").render(
        common, groups=ordered, edit_url=links.edit(CONVENTIONS_PATH)
    )


def generate(
    source: View | Catalogue, docs_dir: Path | str, links: Links | None = None
) -> Generated:
    """Write the generated pages into ``docs_dir/catalogue``: changed files only, stale removed."""
    start = time.perf_counter()
    out = Path(docs_dir) / GENERATED
    pages = render_pages(source, links)
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
