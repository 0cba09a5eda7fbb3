"""What every generated text shares: the Jinja2 environment, filters, and the catalogue's order.

The README and the site pages are rendered from ``kdsurvey/templates/`` (package data) with these, so a paper reads the same
everywhere and the same input always gives byte-identical output.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import jinja2

from kdsurvey.exporters.loss_facts import source as loss_source
from kdsurvey.records.model import Paper

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # package data

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_escape(text: str) -> str:
    """Escape Markdown (and inline HTML) syntax so user text shows as written."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


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
    env.filters.update(md=md_escape, authors=author_list, name=display_name)
    env.globals.update(loss_source=loss_source, newest_first=newest_first)
    return env
