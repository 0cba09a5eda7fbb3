"""``kdsurvey check metadata``: checks of the records that the schema cannot make, offline.

Errors (exit 1): an arXiv id that cannot belong to the record's year, a conference that was not
held that year, a code link that is not in its normal form, near-duplicate titles of what looks
like the same paper, an author listed twice, a paper link that contradicts ``links.arxiv`` or
``links.doi``. Warnings: title casing, author name formats (initials, capitals, one person written
two ways across records), links that could be written better.

``--online`` also compares title, authors and year with the arXiv API and Crossref; their answers
are warnings unless the identifier plainly belongs to another paper.

Findings read like validation errors: ``papers/x.yaml:LINE: field: message``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from difflib import SequenceMatcher
from pathlib import Path

from kdsurvey.importers.sources import (
    ARXIV_INTERVAL,
    add_api_options,
    api_base,
    arxiv_id_of_url,
    doi_of_url,
    github_repo_of_url,
)
from kdsurvey.records.catalogue import display_path, normalise_title
from kdsurvey.records.model import PARTICLES, ascii_fold, family_name

HELP = "check the records beyond the schema: years, venues, links, duplicates, names, casing"

ERROR, WARNING = "error", "warning"

#: Words that stay lowercase inside a title (articles, conjunctions, prepositions).
MINOR_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "but",
        "or",
        "nor",
        "for",
        "so",
        "yet",
        "as",
        "at",
        "by",
        "in",
        "of",
        "off",
        "on",
        "onto",
        "per",
        "to",
        "up",
        "via",
        "with",
        "from",
        "into",
        "over",
        "upon",
        "vs",
        "versus",
    }
)

#: DOI prefixes of the publishers named in venues.yaml.
PUBLISHER_PREFIXES = {
    "IEEE": "10.1109",
    "Springer": "10.1007",
    "Elsevier": "10.1016",
    "MDPI": "10.3390",
    "World Scientific": "10.1142",
    "ACM": "10.1145",
}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True, order=True)
class Finding:
    """One problem of one record, located like a validation error."""

    path: str
    line: int
    field: str
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        label = "" if self.severity == ERROR else "warning: "
        return f"{self.path}:{self.line}: {self.field}: {label}{self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


def arxiv_date(arxiv_id: str) -> tuple[int, int]:
    """``(year, month)`` an arXiv id was issued in: ``2305.12345`` -> (2023, 5),
    ``cs/0112017`` -> (2001, 12)."""
    digits = arxiv_id.split("/", 1)[1] if "/" in arxiv_id else arxiv_id
    yy, mm = int(digits[:2]), int(digits[2:4])
    return (1900 + yy if yy >= 91 else 2000 + yy), mm


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, 1):
        current = [j] + [0] * len(a)
        low = current[0]
        for i, ca in enumerate(a, 1):
            current[i] = min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + (ca != cb))
            low = min(low, current[i])
        if low > limit:
            return limit + 1
        previous = current
    return previous[-1]


def near_limit(title: str) -> int:
    """How many edits still make two normalised titles "the same": 1 for short ones, up to 3."""
    return 1 if len(title) < 20 else min(3, len(title) // 20 + 1)


# -- title casing ----------------------------------------------------------------------------------


def _case_part(part: str, minor_ok: bool) -> str:
    letters = re.sub(r"[^A-Za-z]", "", part)
    if not letters or re.search(r"\d", part) or any(c.isupper() for c in letters[1:]):
        return part  # acronyms, CamelCase names, numbers: as written
    match = re.search(r"[A-Za-z]", part)
    start = match.start()
    word = part[start:]
    core = re.sub(r"[^A-Za-z]+$", "", word).lower()
    if minor_ok and core in MINOR_WORDS:
        return part[:start] + word.lower()
    return part[:start] + word[0].upper() + word[1:]


def title_case(title: str) -> str:
    """The Title Case the catalogue writes titles in: minor words lowercase except first, last and
    after a colon; each part of a hyphenated word capitalised; acronyms and names as written."""
    words = title.split(" ")
    out = []
    after_colon = True
    for index, word in enumerate(words):
        edge = after_colon or index == len(words) - 1
        parts = word.split("-")
        # the first part of a word is capitalised at the edges and in hyphenated compounds
        out.append(
            "-".join(
                _case_part(part, minor_ok=k > 0 or (not edge and len(parts) == 1))
                for k, part in enumerate(parts)
            )
        )
        after_colon = word.endswith((":", "?", "!", "\u2014"))
    return " ".join(out)


# -- the offline checks ----------------------------------------------------------------------------


class _Checker:
    def __init__(self, catalogue, papers, today: date):
        self.catalogue = catalogue
        self.papers = papers
        self.today = today
        self.findings: list[Finding] = []

    def add(self, paper, loc: tuple, message: str, severity: str = ERROR) -> None:
        path = display_path(self.catalogue.path_of(paper))
        line = self.catalogue.line_of(paper, *loc)
        name = (
            "".join(
                f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(loc)
            )
            or "record"
        )
        self.findings.append(Finding(path, line, name, message, severity))

    def raw_link(self, paper, name: str) -> str | None:
        links = self.catalogue.source(paper).get("links")
        value = links.get(name) if isinstance(links, dict) else None
        if value is None:
            value = getattr(paper.links, name)
        return None if value is None else str(value)

    def run(self) -> list[Finding]:
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
            elif code.endswith((".git", "/")) and urlpath(code):
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
        prefix = PUBLISHER_PREFIXES.get(venue.publisher or "") if venue else None
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
            key = _person_key(author)
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
                spellings[_person_key(author)].setdefault(author, (paper, index))
                by_family[_family_key(author)].add(author)
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
            full = [n for n in names if not _initials_only(n)]
            for name in names:
                if not _initials_only(name):
                    continue
                matches = [n for n in full if _initials(n) == _initials(name)]
                if len(matches) == 1:
                    paper, index = next(iter(spellings[_person_key(name)].values()))
                    if paper.id in checked:
                        self.add(
                            paper,
                            ("authors", index),
                            f"{name!r} is written {matches[0]!r} in other records",
                            WARNING,
                        )


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.strip("/")


def _fold(text: str) -> str:
    return re.sub(r"[^a-z]", "", ascii_fold(text).lower())


def _person_key(author: str) -> str:
    family, _, given = author.partition(",")
    return f"{_fold(family)},{_fold(given)}"


def _family_key(author: str) -> str:
    return _fold(family_name(author))


def _given_tokens(author: str) -> list[str]:
    return [t for t in re.split(r"[\s.\-]+", author.partition(",")[2]) if t]


def _initials_only(author: str) -> bool:
    tokens = _given_tokens(author)
    return bool(tokens) and all(len(t) == 1 for t in tokens)


def _initials(author: str) -> str:
    return "".join(t[0].upper() for t in _given_tokens(author))


def check(catalogue, papers=None, today: date | None = None) -> list[Finding]:
    """The offline findings for ``papers`` (default: all), compared against the whole catalogue."""
    papers = catalogue.papers if papers is None else papers
    return _Checker(catalogue, papers, today or date.today()).run()


# -- online ----------------------------------------------------------------------------------------


def _similar(a: str, b: str) -> float:
    return SequenceMatcher(None, normalise_title(a), normalise_title(b)).ratio()


def _compare_authors(record: list[str], theirs: list[str], source: str) -> str | None:
    """A message when the author lists differ (by family names, order included)."""
    ours = [_fold(family_name(a)) for a in record]
    folded = [_fold(t) for t in theirs]
    if len(ours) != len(folded):
        return f"{source} lists {len(folded)} author(s), the record {len(ours)}"
    for index, (mine, other) in enumerate(zip(ours, folded, strict=True)):
        if not other.endswith(mine) and not other.startswith(mine):
            return f"author {index + 1} is {theirs[index]!r} in {source}"
    return None


def check_online(catalogue, papers, arxiv, crossref, workers: int = 4) -> list[Finding]:
    """Compare title, authors and year with the arXiv API and Crossref."""
    from concurrent.futures import ThreadPoolExecutor

    from kdsurvey.importers.sources import SourceError

    checker = _Checker(catalogue, papers, date.today())
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
        venue = catalogue.venues.get(paper.venue)
        wanted = paper.links.arxiv_class or "cs.CV"
        if (
            venue is not None
            and venue.kind.value == "preprint"
            and entry.primary_category
            and entry.primary_category != wanted
        ):
            checker.add(
                paper,
                ("links",),
                f"arXiv's primary category is "
                f"{entry.primary_category}: set links.arxiv_class (BibTeX primaryClass, "
                f"{wanted} now)",
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


# -- command line ----------------------------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument(
        "--online",
        action="store_true",
        help="also compare title, authors and year with the arXiv API and Crossref",
    )
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--changed-since", metavar="REV", help="check only records changed since REV")
    p.add_argument(
        "--arxiv-interval",
        type=float,
        default=ARXIV_INTERVAL,
        metavar="S",
        help="seconds between arXiv API requests (default 3)",
    )
    p.add_argument("--timeout", type=float, default=15.0, metavar="S")
    add_api_options(p, "arxiv", "crossref")


def cli(args) -> None:
    """``kdsurvey check metadata``."""
    from kdsurvey.cli import Failure, _catalogue

    catalogue = _catalogue(args)
    papers = catalogue.papers
    if args.changed_since:
        from kdsurvey.checks.links import changed_files

        try:
            changed = changed_files(args.changed_since, [Path(args.papers)])
        except ValueError as exc:
            raise Failure(f"--changed-since {args.changed_since}: {exc}", 2) from None
        papers = [p for p in papers if catalogue.path_of(p).resolve() in changed]
    findings = check(catalogue, papers)
    if args.online:
        from kdsurvey.importers.sources import ArxivClient, CrossrefClient, Http, RetryPolicy

        http = Http(RetryPolicy(timeout=args.timeout))
        try:
            arxiv = ArxivClient(
                http,
                api_base(args, "arxiv"),
                interval=max(0.0, args.arxiv_interval),
            )
            crossref = CrossrefClient(http, api_base(args, "crossref"))
            findings = sorted(findings + check_online(catalogue, papers, arxiv, crossref))
        finally:
            http.close()
    errors = [f for f in findings if f.severity == ERROR or args.strict]
    warnings = [f for f in findings if f not in errors]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "records": len(papers),
                    "errors": [f.as_dict() for f in errors],
                    "warnings": [f.as_dict() for f in warnings],
                },
                indent=2,
            )
        )
    else:
        for finding in findings:
            print(finding)
        print(f"{len(papers)} records: {len(errors)} error(s), {len(warnings)} warning(s)")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        out = sys.stderr if args.format == "json" else sys.stdout
        for finding in findings:
            level = "error" if finding in errors else "warning"
            text = f"{finding.field}: {finding.message}".replace("%", "%25").replace("\n", "%0A")
            out.write(f"::{level} file={finding.path},line={finding.line}::{text}\n")
    if errors:
        raise Failure(f"{len(errors)} metadata error(s)", 1)
