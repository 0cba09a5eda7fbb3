"""``kdsurvey check metadata --online``: title, authors, year and the primary arXiv class compared
with the arXiv API and Crossref. Their answers are warnings unless the identifier plainly belongs
to another paper."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from difflib import SequenceMatcher

from kdsurvey.checks.metadata import Checker
from kdsurvey.importers.httpclient import SourceError
from kdsurvey.problems import WARNING, Problem
from kdsurvey.records.catalogue import normalise_title
from kdsurvey.records.model import DEFAULT_ARXIV_CLASS, family_name
from kdsurvey.records.textrules import fold


def _similar(a: str, b: str) -> float:
    return SequenceMatcher(None, normalise_title(a), normalise_title(b)).ratio()


def _compare_authors(record: list[str], theirs: list[str], source: str) -> str | None:
    """A message when the author lists differ (by family names, order included)."""
    ours = [fold(family_name(a)) for a in record]
    folded = [fold(t) for t in theirs]
    if len(ours) != len(folded):
        return f"{source} lists {len(folded)} author(s), the record {len(ours)}"
    for index, (mine, other) in enumerate(zip(ours, folded, strict=True)):
        if not other.endswith(mine) and not other.startswith(mine):
            return f"author {index + 1} is {theirs[index]!r} in {source}"
    return None


def check_online(catalogue, papers, arxiv, crossref, workers: int = 4) -> list[Problem]:
    """Compare title, authors and year with the arXiv API and Crossref."""
    checker = Checker(catalogue, papers, date.today())
    with_arxiv = [p for p in papers if p.links.arxiv]
    entries: dict = {}
    try:
        entries = arxiv.fetch([p.links.arxiv for p in with_arxiv])
    except SourceError as exc:
        for paper in with_arxiv:
            checker.add(paper, ("links", "arxiv"), f"not compared: {exc.message}", WARNING)
        with_arxiv = []
    for paper in with_arxiv:
        loc = ("links", "arxiv")
        entry = entries.get(paper.links.arxiv)
        if entry is None:
            checker.add(paper, loc, f"arXiv has no paper {paper.links.arxiv}")
            continue
        similarity = _similar(paper.title, entry.title)
        if similarity < 0.6:
            checker.add(paper, loc, f"arXiv {entry.id} is {entry.title!r}: another paper?")
            continue
        if normalise_title(paper.title) != normalise_title(entry.title):
            checker.add(paper, ("title",), f"arXiv's title is {entry.title!r}", WARNING)
        if message := _compare_authors(paper.authors, list(entry.authors), "arXiv"):
            checker.add(paper, ("authors",), message, WARNING)
        # every record with an arXiv id, published or not: the exports carry the class
        wanted = paper.links.arxiv_class or DEFAULT_ARXIV_CLASS
        if entry.primary_category and entry.primary_category != wanted:
            said = "gives" if paper.links.arxiv_class else "gives none, so the exports say"
            checker.add(
                paper,
                ("links",),
                f"arXiv's primary category is {entry.primary_category}: set links.arxiv_class "
                f"(the record {said} {wanted})",
                WARNING,
            )
        if entry.year > paper.year + 1:
            checker.add(
                paper, ("year",), f"arXiv v1 is from {entry.published[:10]}, after {paper.year}"
            )

    with_doi = [p for p in papers if p.links.doi]

    def lookup(paper):
        try:
            return paper, crossref.work(paper.links.doi), None
        except SourceError as exc:
            return paper, None, exc

    with ThreadPoolExecutor(max(1, workers)) as pool:
        answers = list(pool.map(lookup, with_doi))
    for paper, work, error in answers:
        loc = ("links", "doi")
        if error is not None:
            checker.add(paper, loc, f"not compared: {error.message}", WARNING)
            continue
        if work is None:
            checker.add(
                paper,
                loc,
                f"Crossref does not know {paper.links.doi} (another "
                "registration agency, or a wrong DOI)",
                WARNING,
            )
            continue
        if work.title and _similar(paper.title, work.title) < 0.6:
            checker.add(paper, loc, f"DOI {paper.links.doi} is {work.title!r}: another paper?")
            continue
        if work.title and normalise_title(paper.title) != normalise_title(work.title):
            checker.add(paper, ("title",), f"Crossref's title is {work.title!r}", WARNING)
        names = [family for family, _ in work.authors]
        if names and (message := _compare_authors(paper.authors, names, "Crossref")):
            checker.add(paper, ("authors",), message, WARNING)
        years = {y for y in (work.print_year, work.year) if y}
        if years and paper.year not in years:
            dated = "/".join(map(str, sorted(years)))
            checker.add(paper, ("year",), f"Crossref dates the DOI {dated}", WARNING)
    return sorted(checker.findings)
