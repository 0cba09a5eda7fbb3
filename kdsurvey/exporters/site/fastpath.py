"""A faster MkDocs build of the generated pages, giving the same site as the plain build.

Why: at 1,000 papers, Python-Markdown and Material's search indexer took about two thirds of the
build, on pages whose body the templates already write as HTML. A generated page that declares
``kd_html: true`` in its front matter is a sequence of blocks separated by blank lines, each
either one ATX heading line (``## Title { #id data-search-exclude }``) or one raw HTML block
(its first tag block-level, no blank line inside). For such a page, Markdown has nothing to do
but the headings: raw HTML blocks pass through it verbatim. So :class:`FastPages`

* renders a page's headings alone with one shared ``Markdown`` (the configuration's
  extensions, so headings, permalinks and the table of contents come out as in the plain build)
  and puts each HTML block back where it stood: no Markdown instance per page, no HTML parse;
* lets Material's search plugin index a copy of the content in which every block that the index
  would skip anyway (a block whose first tag has ``data-search-exclude``, or any block under a
  heading that has it) is an empty excluded ``<div>``, and every excluded ``<span>`` (the facts'
  labels) is gone: the same entries, without parsing the excluded tables, BibTeX and lists.

It also keeps the theme's compiled templates for the process (``kdsurvey serve`` rebuilds with a
new Jinja environment each time). Everything else (pages without the marker, or that break the
rule) is MkDocs' own rendering.
``mkdocs build`` and ``zensical build`` of the same folder never load this module and build the
same site, only slower: ``tests/test_site.py`` builds the real catalogue both ways and compares
every HTML page and the search index byte for byte.
"""

from __future__ import annotations

import re
from types import MethodType

import jinja2
import jinja2.bccache
from mkdocs.plugins import BasePlugin, CombinedEvent, event_priority
from mkdocs.structure.pages import Page
from mkdocs.structure.toc import get_toc

MARKER = "kd_html"  # front-matter key of a page written as headings and raw HTML blocks
_HEADING = re.compile(r"#{1,6} \S[^\n]*")
# Python-Markdown's block-level tags that may open a raw HTML block (a subset: those we write)
_BLOCK_TAG = re.compile(r"<(div|p|table|pre|ul|ol|dl|details|nav|section|figure|blockquote)[\s>]")
_EXCLUDED_TAG = re.compile(r"<[a-z0-9]+\b[^>]*\sdata-search-exclude[\s=>]")
_ANCHOR = re.compile(r"<[a-zA-Z][^>]*?\sid=\"([^\"]*)\"|<a\s[^>]*?\bname=\"([^\"]*)\"")
# an excluded span with no span inside: the index skips all of it, so it can go
_EXCLUDED_SPAN = re.compile(r"<span data-search-exclude>(?:(?!</?span[\s>]).)*?</span>", re.S)
_STUB = "<div data-search-exclude></div>"  # what the index sees of a skipped block


def split(markdown: str) -> list[tuple[str, str]] | None:
    """The page's blocks as ``("heading" | "html", text)``, or None when it breaks the rule."""
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n", markdown.strip("\n")):
        chunk = chunk.strip("\n")
        if not chunk:
            continue
        if _HEADING.fullmatch(chunk):
            blocks.append(("heading", chunk))
        elif _BLOCK_TAG.match(chunk):
            blocks.append(("html", chunk))
        else:
            return None
    return blocks


class _CompiledTemplates(jinja2.BytecodeCache):
    """The theme's compiled templates, kept for the process: each rebuild of ``kdsurvey serve``
    makes a new Jinja environment, which would compile Material's templates again (half of a
    dirty rebuild). Jinja checks each entry against its template's source, so an edited
    template is compiled again."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


class FastPages(BasePlugin):
    """Render ``kd_html`` pages without a Markdown pass over their HTML; index them cheaply."""

    def __init__(self):
        super().__init__()
        self._md = None
        self._full: dict[int, str] = {}  # id(page) -> its full content while the index reads
        self.rendered: list[str] = []  # the pages rendered here, not by Markdown

    def on_config(self, config):
        self._md = None  # a configuration per build: a new shared Markdown
        return config

    def on_env(self, env, *, config, files):
        env.bytecode_cache = _COMPILED
        return env

    def on_pre_page(self, page: Page, *, config, files):
        plugin = self

        def render(page: Page, config, files) -> None:  # replaces Page.render for this page
            blocks = (
                split(page.markdown) if page.meta.get(MARKER) and "title" in page.meta else None
            )
            if blocks is None:
                Page.render(page, config, files)
            else:
                plugin._render(page, blocks, config)

        page.render = MethodType(render, page)
        return page

    def _markdown(self, config):
        if self._md is None:
            import markdown

            self._md = markdown.Markdown(
                extensions=config["markdown_extensions"],
                extension_configs=config["mdx_configs"] or {},
            )
        return self._md

    def _render(self, page: Page, blocks: list[tuple[str, str]], config) -> None:
        # Markdown renders the headings alone, one line each. The raw blocks go back between
        # them as Markdown puts them: adjacent blocks as one, followed by a newline. The index
        # gets each block the search plugin would skip (excluded, or under an excluded heading)
        # as an empty excluded element: the parser's result is the same.
        md = self._markdown(config)
        md.reset()
        headings = iter(md.convert("\n\n".join(t for k, t in blocks if k == "heading")).split("\n"))
        content, index = [], []
        excluded = False
        for i, (kind, text) in enumerate(blocks):
            if kind == "heading":
                heading = next(headings)
                excluded = bool(_EXCLUDED_TAG.match(heading))
                content.append(heading)
                index.append(heading)
                continue
            indexed = _STUB if excluded or _EXCLUDED_TAG.match(text) else text
            if i and blocks[i - 1][0] == "html":
                content[-1] = f"{content[-1][:-1]}\n\n{text}\n"
                index[-1] = f"{index[-1][:-1]}\n\n{indexed}\n"
            else:
                content.append(text + "\n")
                index.append(indexed + "\n")
        html = "\n".join(content).strip()
        lean = _EXCLUDED_SPAN.sub("", "\n".join(index).strip())
        self.rendered.append(page.file.src_uri)
        page.content = html
        page.toc = get_toc(getattr(md, "toc_tokens", []))
        page.present_anchor_ids = {a or b for a, b in _ANCHOR.findall(html)}
        page.links_to_anchors = {}
        if lean != html:
            page._kd_index_content = lean

    @event_priority(100)  # before Material's search plugin indexes the page
    def _index_lean(self, context, *, page, config, nav):
        lean = page.__dict__.pop("_kd_index_content", None)
        if lean is not None and _indexing(config):
            self._full[id(page)] = page.content
            page.content = lean
        return context

    @event_priority(-100)  # after it: the full content, with the index's attributes removed
    def _restore(self, context, *, page, config, nav):
        full = self._full.pop(id(page), None)
        if full is not None:
            page.content = re.sub(r"\s?data-search-\w+=\"[^\"]+\"", "", full)
        return context

    on_page_context = CombinedEvent(_index_lean, _restore)


def _indexing(config) -> bool:
    """Whether Material's search plugin indexes pages in this build."""
    search = config.plugins.get("material/search")
    return bool(search and search.config.enabled)


def install(config) -> FastPages:
    """Add :class:`FastPages` to a loaded MkDocs configuration (``kdsurvey build`` does)."""
    plugin = FastPages()
    config.plugins["kdsurvey/fastpath"] = plugin
    return plugin
