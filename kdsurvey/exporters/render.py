"""What every generated text shares: the Jinja2 environment, filters, and the catalogue's order.

The README and the site pages are rendered from ``kdsurvey/templates/`` (package data) with these, so a paper reads the same
everywhere and the same input always gives byte-identical output.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import quote

import jinja2

from kdsurvey.exporters.loss_facts import source as loss_source
from kdsurvey.records.model import Paper

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # package data

_SPACE = re.compile(r"\s\s|[^\S ]")  # whitespace other than single spaces
_SPACES = re.compile(r"\s+")


# Marks that act anywhere in a line, in Python-Markdown (the site) and GitHub's Markdown (the
# README): backslash-escaped. ``& < > " ~`` become entities, which both decode (``~~`` strikes
# through on GitHub, whose escape ``\~`` Python-Markdown would print). ``- + . ! ( )`` need
# nothing: they only start a list at the start of a line (escaped there), or a link or image
# after a ``[`` (always escaped).
_MD_TABLE = str.maketrans(
    {
        **{c: "\\" + c for c in "\\`*_{}[]#|"},
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "~": "&#126;",
    }
)
_LIST_START = re.compile(r"^([-+]|\d+[.)])")  # a list item, when a line starts with it
_LINE_START = {":": "&#58;", "=": "&#61;"}  # a definition (the site's def_list), a heading rule


def md_text(value) -> str:
    """Record text as Markdown that renders exactly as written, on one line: the one Markdown
    escaper of the README and the site.

    Markdown syntax is backslash-escaped and ``& < > " ~`` become entities, so no markup, link,
    HTML or snippet directive in a record survives as anything but text.
    """
    text = str(value)
    if _SPACE.search(text):
        text = _SPACES.sub(" ", text)
    text = text.translate(_MD_TABLE)
    if text[:1] in _LINE_START:
        return _LINE_START[text[0]] + text[1:]
    return _LIST_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], text)


def url(value) -> str:
    """An external URL safe inside Markdown ``(...)`` and HTML attributes (percent-encoded)."""
    return quote(str(value), safe=":/?#@!$&'*+,;=%~-._[]")


def anchor(title: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def display_name(author: str) -> str:
    """``Hinton, Geoffrey`` -> ``Geoffrey Hinton``."""
    family, _, given = author.partition(", ")
    return f"{given} {family}" if given else family


def author_list(authors: list[str], limit: int | None = None) -> str:
    """Authors for reading: ``A, B and C``; ``A, B, C et al.`` past ``limit``."""
    names = [display_name(a) for a in authors]
    if not names:
        return ""
    if limit and len(names) > limit:
        return ", ".join(names[:limit]) + " et al."
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def newest_first(papers: list[Paper]) -> list[Paper]:
    """The catalogue's reading order: year descending, then title."""
    return sorted(papers, key=lambda p: (-p.year, p.title.casefold(), p.id))


@cache
def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Markdown output; user text goes through ``md``
    )
    env.filters.update(md=md_text, url=url, anchor=anchor, authors=author_list, name=display_name)
    env.globals.update(loss_source=loss_source, newest_first=newest_first)
    return env
