"""What the catalogue does not know: the ``unconfirmed`` fields of records, in one place.

A record's ``unconfirmed`` maps a field name to one sentence saying what was searched and why the
value is missing or only partly known. :mod:`kdsurvey.checks.metadata` reports each as a warning,
the README marks the entry, the site lists them on the help page and on the paper page, and the
exports carry them (BibTeX: see :func:`bibtex_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kdsurvey.problems import WARNING, Problem
from kdsurvey.records.model import Paper

#: The site page that lists every unconfirmed field (relative to the site root).
HELP_PAGE = "help"
#: What BibTeX's ``note`` says of an entry whose authors are unknown.
NO_AUTHOR_NOTE = "Authors unknown"


@dataclass(frozen=True)
class Unknown:
    """One unconfirmed field of one record."""

    paper: Paper
    field: str
    sentence: str


def unknowns(papers: Iterable[Paper]) -> list[Unknown]:
    """Every unconfirmed field, by record id then in the record's order."""
    return [
        Unknown(p, name, sentence)
        for p in sorted(papers, key=lambda p: p.id)
        for name, sentence in p.unconfirmed.items()
    ]


def with_unknowns(papers: Iterable[Paper]) -> list[Paper]:
    """The records with at least one unconfirmed field, sorted by id."""
    return sorted((p for p in papers if p.unconfirmed), key=lambda p: p.id)


def findings(catalogue, papers: Iterable[Paper], severity: str = WARNING) -> list[Problem]:
    """One metadata problem (a warning by default) per unconfirmed field, at its line."""
    from kdsurvey.records.catalogue import display_path

    return [
        Problem(
            display_path(catalogue.path_of(u.paper)),
            catalogue.line_of(u.paper, "unconfirmed", u.field),
            f"unconfirmed.{u.field}",
            f"unconfirmed: {u.sentence}",
            severity,
        )
        for u in unknowns(papers)
    ]


def count(problems: Iterable[Problem]) -> int:
    """How many of ``problems`` are unconfirmed fields."""
    return sum(p.field.startswith("unconfirmed.") for p in problems)


def bibtex_authors(paper: Paper) -> tuple[list[str], bool]:
    """The names BibTeX lists and whether ``and others`` follows: a list that
    ``unconfirmed.authors`` calls partial ends in ``and others`` (typeset "et al."), never in an
    invented name."""
    partial = bool(paper.authors) and "authors" in paper.unconfirmed
    return list(paper.authors), partial


def no_author_fields(paper: Paper, title: str) -> list[tuple[str, str]]:
    """For a record with no known author: ``key`` (what bibtex and biber sort and label by when
    there is no author; the title, as anonymous works are alphabetised) and ``note``."""
    if paper.authors:
        return []
    return [("key", title), ("note", NO_AUTHOR_NOTE)]


def export_warnings(papers: Iterable[Paper]) -> list[str]:
    """One stderr line per exported record with no known author."""
    return [
        f"warning: {p.id}: no author is known; the BibTeX entry has no author field, "
        f"only key and note (LaTeX will warn about the missing author)"
        for p in sorted(papers, key=lambda p: p.id)
        if not p.authors
    ]
