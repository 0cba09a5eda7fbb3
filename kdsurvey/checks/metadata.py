"""``kdsurvey check metadata``: checks of the records that the schema cannot make, offline.

Errors (exit 1): an arXiv id that cannot belong to the record's year, a conference that was not
held that year, a code link that is not in its normal form, near-duplicate titles of what looks
like the same paper, an author listed twice, a paper link that contradicts ``links.arxiv`` or
``links.doi``. Warnings: title casing, author name formats (initials, capitals, one person written
two ways across records), links that could be written better, a DOI prefix that is not the venue
publisher's (``papers/doi_prefixes.yaml``).

Findings are :class:`kdsurvey.problems.Problem` and read like validation errors.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from urllib.parse import urlsplit

from kdsurvey.importers.arxiv import arxiv_id_of_url
from kdsurvey.importers.crossref import doi_of_url
from kdsurvey.importers.github import github_repo_of_url
from kdsurvey.problems import ERROR, WARNING, Problem, field_name
from kdsurvey.records.catalogue import display_path, normalise_title
from kdsurvey.records.model import PARTICLES
from kdsurvey.records.textrules import (
    MONTHS,
    arxiv_date,
    edit_distance,
    family_key,
    initials,
    initials_only,
    near_limit,
    person_key,
    title_case,
)


class Checker:
    def __init__(self, catalogue, papers, today: date):
        self.catalogue = catalogue
        self.papers = papers
        self.today = today
        self.findings: list[Problem] = []

    def add(self, paper, loc: tuple, message: str, severity: str = ERROR) -> None:
        path = display_path(self.catalogue.path_of(paper))
        line = self.catalogue.line_of(paper, *loc)
        self.findings.append(Problem(path, line, field_name(loc), message, severity))

    def raw_link(self, paper, name: str) -> str | None:
        links = self.catalogue.source(paper).get("links")
        value = links.get(name) if isinstance(links, dict) else None
        if value is None:
            value = getattr(paper.links, name)
        return None if value is None else str(value)

    def run(self) -> list[Problem]:
        for paper in self.papers:
            self.arxiv(paper)
            self.venue(paper)
            self.links(paper)
            self.authors(paper)
            self.title(paper)
        self.duplicates()
        self.author_spellings()
        return sorted(self.findings)

    def arxiv(self, paper) -> None:
        arxiv_id = paper.links.arxiv
        if not arxiv_id:
            return
        loc = ("links", "arxiv")
        year, month = arxiv_date(arxiv_id)
        if not 1 <= month <= 12:
            self.add(paper, loc, f"arXiv id {arxiv_id} has no month {month:02d}")
            return
        when = f"{MONTHS[month - 1]} {year}"
        if (year, month) > (self.today.year, self.today.month):
            self.add(paper, loc, f"arXiv id {arxiv_id} would be from {when}, in the future")
            return
        venue = self.catalogue.venues.get(paper.venue)
        preprint = venue is not None and venue.kind.value == "preprint"
        if year > paper.year + 1 or (preprint and year > paper.year):
            self.add(
                paper,
                loc,
                f"arXiv id {arxiv_id} is from {when}: it cannot belong to a "
                f"{paper.year} paper (wrong id, or year should be the cited version's)",
            )
        elif preprint and paper.year > year:
            self.add(
                paper,
                ("year",),
                f"an arXiv-only record is cited by the year of its arXiv "
                f"id ({year}), not {paper.year}",
                WARNING,
            )
        elif paper.year - year > 4:
            self.add(
                paper,
                ("year",),
                f"{paper.year - year} years after its arXiv id "
                f"({when}): is {paper.year} the year of the cited version?",
                WARNING,
            )

    def venue(self, paper) -> None:
        venue = self.catalogue.venues.get(paper.venue)
        if paper.year > self.today.year + 1:
            self.add(paper, ("year",), f"{paper.year} is in the future")
        if venue is None or venue.kind.value != "conference" or venue.first_year is None:
            return
        if paper.year < venue.first_year:
            self.add(
                paper,
                ("venue",),
                f"{venue.short} was first held in {venue.first_year}, after {paper.year}",
            )
        elif venue.every == 2 and (paper.year - venue.first_year) % 2:
            parity = "odd" if venue.first_year % 2 else "even"
            self.add(
                paper,
                ("venue",),
                f"{venue.short} is held every other year, in {parity} "
                f"years: there was no {venue.short} {paper.year} (year or venue is wrong)",
            )

    def links(self, paper) -> None:
        code = self.raw_link(paper, "code")
        if code:
            repo = github_repo_of_url(code)
            if repo:
                normal = f"https://github.com/{repo[0]}/{repo[1]}"
                if code != normal:
                    self.add(paper, ("links", "code"), f"write the code link as {normal}")
            elif code.endswith((".git", "/")) and urlsplit(code).path.strip("/"):
                tail = ".git" if code.endswith(".git") else "/"
                self.add(paper, ("links", "code"), f"write the code link without a trailing {tail}")
        elif paper.links.code_official is not None:
            self.add(
                paper, ("links", "code_official"), "code_official without a code link", WARNING
            )
        paper_url = self.raw_link(paper, "paper") or ""
        in_url = arxiv_id_of_url(paper_url)
        if in_url:
            if paper.links.arxiv and in_url != paper.links.arxiv:
                self.add(
                    paper,
                    ("links", "paper"),
                    f"links to arXiv {in_url} but links.arxiv is {paper.links.arxiv}",
                )
            elif not paper.links.arxiv:
                self.add(
                    paper,
                    ("links", "paper"),
                    f'an arXiv link: also set links.arxiv: "{in_url}"',
                    WARNING,
                )
            if paper_url != f"https://arxiv.org/abs/{in_url}":
                self.add(
                    paper,
                    ("links", "paper"),
                    f"link the abstract page: https://arxiv.org/abs/{in_url}",
                    WARNING,
                )
        doi_in_url = doi_of_url(paper_url)
        if doi_in_url:
            if paper.links.doi and doi_in_url.lower() != paper.links.doi.lower():
                self.add(
                    paper,
                    ("links", "paper"),
                    f"links to DOI {doi_in_url} but links.doi is {paper.links.doi}",
                )
            elif not paper.links.doi:
                self.add(
                    paper,
                    ("links", "paper"),
                    f"a DOI link: also set links.doi: {doi_in_url}",
                    WARNING,
                )
        for name in ("paper", "project", "code"):
            value = self.raw_link(paper, name)
            if value and value.startswith("http://"):
                self.add(paper, ("links", name), "use https:// if the site has it", WARNING)
        venue = self.catalogue.venues.get(paper.venue)
        prefix = self.catalogue.doi_prefixes.get(venue.publisher or "") if venue else None
        if prefix and paper.links.doi and not paper.links.doi.startswith(prefix + "/"):
            self.add(
                paper,
                ("links", "doi"),
                f"{venue.short} is published by {venue.publisher}, whose DOIs start {prefix}/",
                WARNING,
            )

    def authors(self, paper) -> None:
        seen: dict[str, int] = {}
        for index, author in enumerate(paper.authors):
            loc = ("authors", index)
            family, _, given = (s.strip() for s in author.partition(","))
            key = person_key(author)
            if key in seen:
                self.add(paper, loc, f"{author!r} is listed twice (also authors[{seen[key]}])")
            seen.setdefault(key, index)
            if re.search(r"\d|\bet al\b|\bothers\b", author, re.IGNORECASE):
                self.add(paper, loc, f"{author!r} is not a name: list every author")
                continue
            if "  " in author or author != author.strip():
                self.add(paper, loc, f"{author!r} has stray spaces", WARNING)
            if len(family) > 2 and family.isupper():
                self.add(
                    paper,
                    loc,
                    f"write the family name as {family.title()!r}, not {family!r}",
                    WARNING,
                )
            first = family.split()[0] if family.split() else family
            if family[:1].islower() and first not in PARTICLES:
                self.add(
                    paper, loc, f"family name {family!r} starts with a lowercase letter", WARNING
                )
            if given[:1].islower():
                self.add(
                    paper, loc, f"given name {given!r} starts with a lowercase letter", WARNING
                )
            tokens = re.split(r"[\s-]+", given)
            if tokens and all(re.fullmatch(r"[A-Z]\.?", t) for t in tokens):
                self.add(
                    paper,
                    loc,
                    f"given name {given!r} is only initials: write it in full when the paper does",
                    WARNING,
                )
            elif any(re.fullmatch(r"[A-Z]", t) for t in tokens):
                self.add(paper, loc, f"an initial without a period in {given!r}", WARNING)

    def title(self, paper) -> None:
        title = paper.title
        letters = re.sub(r"[^A-Za-z]", "", title)
        if letters and (letters.isupper() or letters.islower()):
            case = "capitals" if letters.isupper() else "lowercase"
            self.add(paper, ("title",), f"title is all {case}", WARNING)
            return
        expected = title_case(title)
        if expected != title:
            words = [
                w for w, e in zip(title.split(" "), expected.split(" "), strict=True) if w != e
            ]
            self.add(
                paper,
                ("title",),
                f"title casing ({', '.join(words)}): the catalogue "
                f"writes titles in Title Case: {expected!r}",
                WARNING,
            )

    def duplicates(self) -> None:
        items = sorted(
            ((normalise_title(p.title), p) for p in self.catalogue.papers),
            key=lambda item: (len(item[0]), item[1].id),
        )
        checked = {p.id for p in self.papers}
        for i, (a, pa) in enumerate(items):
            limit = near_limit(a)
            for b, pb in items[i + 1 :]:
                if len(b) - len(a) > limit:
                    break
                if a == b or (pa.id not in checked and pb.id not in checked):
                    continue  # identical titles are validation errors already
                distance = edit_distance(a, b, limit)
                if distance > limit:
                    continue
                first, second = sorted((pa, pb), key=lambda p: p.id)
                distinct = (
                    first.links.arxiv
                    and second.links.arxiv
                    and first.links.arxiv != second.links.arxiv
                ) or (
                    first.links.doi
                    and second.links.doi
                    and first.links.doi.lower() != second.links.doi.lower()
                )
                other = display_path(self.catalogue.path_of(first))
                self.add(
                    second,
                    ("title",),
                    f"title within {distance} edit(s) of {other}: "
                    f"{first.title!r} (the same paper?)",
                    WARNING if distinct else ERROR,
                )

    def author_spellings(self) -> None:
        """One person, two spellings across records (accents, hyphens, initials)."""
        spellings: dict[str, dict[str, tuple]] = defaultdict(dict)
        by_family: dict[str, set[str]] = defaultdict(set)
        for paper in self.catalogue.papers:
            for index, author in enumerate(paper.authors):
                spellings[person_key(author)].setdefault(author, (paper, index))
                by_family[family_key(author)].add(author)
        checked = {p.id for p in self.papers}
        for forms in spellings.values():
            if len(forms) < 2:
                continue
            ordered = sorted(forms.items(), key=lambda item: item[1][0].id)
            (first, (first_paper, _)) = ordered[0]
            where = display_path(self.catalogue.path_of(first_paper))
            for author, (paper, index) in ordered[1:]:
                if paper.id in checked:
                    self.add(
                        paper,
                        ("authors", index),
                        f"written {author!r} here but {first!r} "
                        f"in {where}: one spelling per person",
                        WARNING,
                    )
        for names in by_family.values():
            full = [n for n in names if not initials_only(n)]
            for name in names:
                if not initials_only(name):
                    continue
                matches = [n for n in full if initials(n) == initials(name)]
                if len(matches) == 1:
                    paper, index = next(iter(spellings[person_key(name)].values()))
                    if paper.id in checked:
                        self.add(
                            paper,
                            ("authors", index),
                            f"{name!r} is written {matches[0]!r} in other records",
                            WARNING,
                        )


def check(catalogue, papers=None, today: date | None = None) -> list[Problem]:
    """The offline findings for ``papers`` (default: all), compared against the whole catalogue."""
    from kdsurvey.records.unknowns import findings as unconfirmed

    papers = catalogue.papers if papers is None else papers
    found = Checker(catalogue, papers, today or date.today()).run()
    return sorted(found + unconfirmed(catalogue, papers, WARNING))
