"""BibTeX in: ``kdsurvey import bibtex FILE`` turns entries (as copied from Google Scholar, DBLP,
arXiv or a publisher) into records ``papers/<id>.yaml``, the inverse of :mod:`kdsurvey.exporters.citations`.

What BibTeX carries becomes record fields: the id (by the key rule), authors as
``Family, Given`` with LaTeX accents decoded, the venue (matched to a key of ``venues.yaml``), the
arXiv id, DOI, paper link, volume/number/pages. What it cannot carry (category, tasks, loss,
summary) comes from the command's flags or is written as ``null  # TODO`` so that
``kdsurvey validate`` fails until the contributor fills it in. Every problem of every entry is
reported before anything is written, and an existing record is never overwritten.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import bibtexparser
from bibtexparser.middlewares import NormalizeFieldKeys
from bibtexparser.middlewares.names import (
    InvalidNameError,
    parse_single_name_into_parts,
    split_multiple_persons_names,
)

from kdsurvey.records.catalogue import already_message, identities, same_paper
from kdsurvey.records.model import ARXIV_RE, Venue, VenueKind, ascii_fold, citation_key
from kdsurvey.records.textrules import initials_only, title_case
from kdsurvey.records.writer import record_yaml, todo_fields

_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.", re.I)
_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arxiv:\s*|abs/)"
    r"(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?",
    re.I,
)
_DBLP_NUMBER = re.compile(r"\s+\d{4}$")  # DBLP's homonym suffix: "Jian Sun 0001"


class ImportFailure(Exception):
    """Every problem found, one line each; nothing was written. ``usage``: the options do not fit
    the file (bad usage, exit 2), not a problem of its entries."""

    def __init__(self, problems: list[str], usage: bool = False):
        super().__init__("\n".join(problems))
        self.problems = problems
        self.usage = usage


@dataclass
class Imported:
    """One record made from one BibTeX entry."""

    entry_key: str
    fields: dict
    path: Path
    todo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was tidied, and what could not be

    @property
    def yaml(self) -> str:
        return record_yaml(self.fields)


# -- LaTeX to text ----------------------------------------------------------------------------

_decoder = None


def latex_to_text(value: str) -> str:
    """A BibTeX value as plain Unicode: accents decoded (``{\\"o}`` -> ``ö``), protective braces
    and escapes dropped, whitespace collapsed."""
    global _decoder
    if _decoder is None:
        from pylatexenc.latex2text import LatexNodes2Text

        _decoder = LatexNodes2Text(math_mode="text", strict_latex_spaces=True)
    value = value.replace(r"\textbraceleft", "\\{").replace(r"\textbraceright", "\\}")
    text = _decoder.latex_to_text(value).replace("\u00a0", " ")
    return " ".join(text.split())


def _unescape(value: str) -> str:
    """A verbatim-ish field (url, doi, eprint): only backslash escapes and ``\\url{}`` removed."""
    value = re.sub(r"\\url\{([^}]*)\}", r"\1", value.strip())
    return re.sub(r"\\([_&%#$~])", r"\1", value).strip("{} ")


# -- authors ----------------------------------------------------------------------------------


def authors(value: str) -> tuple[list[str], bool]:
    """A BibTeX author field as ``Family, Given`` names, and whether the list ends with
    ``and others`` (partial, as ``kdsurvey export bibtex`` writes a list that ``unconfirmed.authors``
    calls incomplete). ``ValueError`` for ``others`` anywhere but last, or an unreadable name."""
    names = []
    raws = [" ".join(raw.split()) for raw in split_multiple_persons_names(value)]
    partial = bool(raws) and raws[-1].lower() == "others"
    if partial:
        raws.pop()
    for raw in raws:
        if raw.lower() == "others":
            raise ValueError("'others' stands for the rest of the list: only last")
        raw = _DBLP_NUMBER.sub("", raw)
        try:
            parts = parse_single_name_into_parts(raw)
        except InvalidNameError as exc:
            raise ValueError(f"cannot read the author name {raw!r}: {exc}") from None
        family = latex_to_text(" ".join(parts.von + parts.last + parts.jr))
        given = latex_to_text(" ".join(parts.first))
        names.append(f"{family}, {given}" if given else family)
    return names, partial


def unconfirmed_authors(names: list[str], entry_key: str = "") -> str:
    """The ``unconfirmed.authors`` sentence of an entry whose author list is partial (``and
    others``) or missing: what the import saw, and that the list is incomplete."""
    entry = f"The BibTeX entry {entry_key}" if entry_key else "The BibTeX entry"
    if names:
        return (
            f"{entry} lists {len(names)} author{'s' if len(names) != 1 else ''} and then 'and "
            "others': the author list is incomplete; only the names given are recorded."
        )
    return f"{entry} has no author field: the author list is incomplete (no name is known)."


# -- venues -----------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = ascii_fold(text).lower().replace("&", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"^\s*proceedings of (the )?", "", text)
    return " ".join(text.split())


def _is_workshop(normalised: str) -> bool:
    return "workshop" in normalised


def match_venue(text: str, venues: dict[str, Venue]) -> str | None:
    """The key of the venue ``text`` (a booktitle or journal) names, or ``None``.

    Tried in order: the whole text is a venue's name, short name or one of its ``aliases``
    (venues.yaml); the text contains one
    (the longest wins: "... Computer Vision Workshops" is not the main conference); the text
    contains a venue's acronym in capitals (``{CVPR} 2022``). A workshop only matches a workshop
    venue, and a main conference never matches a workshop. Ambiguous acronyms give ``None``.
    """
    plain = latex_to_text(text)
    wanted = _normalise(plain)
    if not wanted:
        return None
    workshop = _is_workshop(wanted)
    candidates: list[tuple[str, str, str]] = []  # (normalised, original, key)
    for key, venue in venues.items():
        if _is_workshop(_normalise(venue.name)) != workshop:
            continue
        for spelling in (venue.name, venue.short, *venue.aliases):
            candidates.append((_normalise(spelling), spelling, key))
    for norm, _, key in candidates:
        if norm == wanted:
            return key
    padded = f" {wanted} "
    contained = [
        (len(norm), key) for norm, _, key in candidates if " " in norm and f" {norm} " in padded
    ]
    if contained:
        return max(contained)[1]
    acronyms = {
        key
        for _, spelling, key in candidates
        if re.fullmatch(r"[A-Z][A-Za-z]*[A-Z]", spelling)
        and re.search(rf"(?<![A-Za-z]){re.escape(spelling)}(?![A-Za-z])", plain)
    }
    return acronyms.pop() if len(acronyms) == 1 else None


def _preprint_key(venues: dict[str, Venue]) -> str | None:
    if "arxiv" in venues:
        return "arxiv"
    return next((k for k, v in venues.items() if v.kind == VenueKind.preprint), None)


# -- identifiers ------------------------------------------------------------------------------


def arxiv_id(fields: dict[str, str]) -> str | None:
    """The arXiv id (no version) from eprint, a CoRR volume ``abs/...``, journal, url or note."""
    eprint = _unescape(fields.get("eprint", ""))
    prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").lower()
    if eprint and "arxiv" in prefix:
        bare = re.sub(r"^arxiv:\s*", "", eprint, flags=re.I)
        bare = re.sub(r"v\d+$", "", bare)
        if ARXIV_RE.match(bare):
            return bare
    for name in ("volume", "journal", "url", "howpublished", "note", "doi"):
        value = _unescape(fields.get(name, ""))
        if name == "doi":
            value = re.sub(r"^10\.48550/arxiv\.", "arxiv:", value, flags=re.I)
        match = _ARXIV_IN_TEXT.search(value)
        if match and ARXIV_RE.match(match.group(1)):
            return match.group(1)
    return None


def doi(fields: dict[str, str]) -> str | None:
    """The DOI without ``https://doi.org/``; arXiv's own DOIs are left to the arXiv id."""
    value = _unescape(fields.get("doi", ""))
    value = re.sub(r"^(https?://(dx\.)?doi\.org/|doi:\s*)", "", value, flags=re.I)
    if not value or _ARXIV_DOI.match(value):
        return None
    return value


def paper_link(fields: dict[str, str], doi_value: str | None, arxiv: str | None) -> str | None:
    url = _unescape(fields.get("url", "")).split()[0] if fields.get("url", "").strip() else ""
    if url and "arxiv.org/" in url and arxiv:
        return f"https://arxiv.org/abs/{arxiv}"
    if url.startswith(("http://", "https://")):
        return url
    if doi_value:
        return f"https://doi.org/{doi_value}"
    if arxiv:
        return f"https://arxiv.org/abs/{arxiv}"
    return None


def _pages(value: str) -> str | None:
    value = latex_to_text(value) if "\\" in value else value
    value = re.sub(r"\s*(?:-+|\u2013|\u2014)\s*", "--", value.strip())
    return value or None


# -- entries to records -----------------------------------------------------------------------


@dataclass
class Options:
    """What BibTeX cannot say, from the command's flags (``None``/empty: leave a TODO)."""

    category: str | None = None
    tasks: list[str] = field(default_factory=list)
    loss: list[str] = field(default_factory=list)
    summary: str | None = None
    #: ``--venue``, ``--paper``, ``--code``, ``--official``: win over what the entry says.
    venue: str | None = None
    paper: str | None = None
    code: str | None = None
    code_official: bool | None = None

    def one_paper(self) -> list[str]:
        """The flags given that describe one paper (a file of several entries cannot take them)."""
        named = {"summary": self.summary, "venue": self.venue, "paper": self.paper}
        named["code"] = self.code
        return [f"--{name}" for name, value in named.items() if value]


def record_fields(
    entry_fields: dict[str, str], venues: dict[str, Venue], options: Options, entry_key: str = ""
) -> dict:
    """Record fields from one entry's fields (lower-case keys, enclosing braces removed).
    ``ValueError`` names what is wrong (an unknown venue, no year, ...)."""
    f = entry_fields
    problems = []
    title = latex_to_text(f.get("title", ""))
    if not title:
        problems.append("no title")
    # No author field, or a list ending in "and others": the known names, and an
    # unconfirmed.authors sentence, never an invented name (what `export bibtex` writes reads back).
    try:
        names, partial = authors(f.get("author", ""))
    except ValueError as exc:
        problems.append(str(exc))
        names, partial = [], False
    year_text = latex_to_text(f.get("year", ""))
    year = int(year_text) if year_text.isdigit() else None
    if year is None:
        problems.append(f"no year (or not a number: {year_text!r})" if year_text else "no year")

    arxiv = arxiv_id(f)
    where = f.get("booktitle") or f.get("journal") or ""
    preprint = _preprint_key(venues)
    venue = options.venue
    if venue:
        pass  # --venue wins over the entry's booktitle or journal
    elif where.strip():
        venue = match_venue(where, venues)
        if venue is None:
            problems.append(
                f"unknown venue {latex_to_text(where)!r}: add it to venues.yaml (or this "
                "spelling to a venue's aliases there) and import again"
            )
    elif arxiv and preprint:
        venue = preprint
    else:
        problems.append("no booktitle or journal, and no arXiv id: cannot tell the venue")
    if problems:
        raise ValueError("; ".join(problems))

    doi_value = doi(f)
    record: dict = {
        "id": citation_key(names[0] if names else None, year, title),
        "title": title,
        "authors": names,
        "year": year,
        "venue": venue,
        "category": options.category,
        "tasks": list(options.tasks),
        "links": {
            "paper": options.paper or paper_link(f, doi_value, arxiv),
            "arxiv": arxiv,
            "doi": doi_value,
        },
        "loss": list(options.loss),
        "summary": options.summary,
    }
    if options.code:
        record["links"]["code"] = options.code
    if options.code_official is not None:
        record["links"]["code_official"] = options.code_official
    if venues[venue].kind != VenueKind.preprint:
        # A proceedings part (AAAI) is exported as biblatex's `part`; biblatex writes `issue`.
        sources = {"volume": ("volume",), "number": ("number", "part", "issue")}
        for name, keys in sources.items():
            value = latex_to_text(next((f[k] for k in keys if f.get(k, "").strip()), ""))
            if value and not value.lower().startswith("abs/"):
                record[name] = value
        if f.get("pages"):
            record["pages"] = _pages(f["pages"])
    if entry_key:
        record["notes"] = f"Imported from the BibTeX entry {entry_key}."
    if partial or not names:
        record["unconfirmed"] = {"authors": unconfirmed_authors(names, entry_key)}
    return record


_BARE_INITIAL = re.compile(r"(?<![\w.])([A-Z])(?=[\s-]|$)")


def tidy(record: dict) -> list[str]:
    """Fix in ``record`` what Google Scholar's entries get wrong and ``check metadata`` would warn
    about at once: a title in sentence case (written in Title Case, as the catalogue writes
    titles) and an initial without its period (``Timothy M``); one line for each fix, and for
    what cannot be fixed here (a given name of initials only: only the paper knows it in full)."""
    notes = []
    cased = title_case(record["title"])
    if cased != record["title"]:
        notes.append(
            f"title: written in Title Case, {cased!r} (check the names and acronyms the entry "
            "wrote in lower case)"
        )
        record["title"] = cased
    for index, name in enumerate(record["authors"]):
        family, _, given = name.partition(", ")
        fixed = _BARE_INITIAL.sub(r"\1.", given)
        if fixed != given:
            notes.append(
                f"authors[{index}]: {given!r} written {fixed!r} (an initial takes a period)"
            )
            record["authors"][index] = f"{family}, {fixed}"
        if initials_only(record["authors"][index]):
            notes.append(
                f"authors[{index}]: {record['authors'][index]!r} has only initials: write the "
                "given name in full when the paper does"
            )
    return notes


def _parse(text: str, source: str) -> tuple[list, list[str]]:
    splitter_log = logging.getLogger("bibtexparser.splitter")
    level = splitter_log.level
    splitter_log.setLevel(logging.ERROR)  # its warnings are reported below, with the file name
    try:
        library = bibtexparser.parse_string(text, append_middleware=[NormalizeFieldKeys()])
    finally:
        splitter_log.setLevel(level)
    problems = []
    for block in library.failed_blocks:
        line = getattr(block, "start_line", None)
        where = f"{source}:{line + 1}" if isinstance(line, int) else source
        error = block.error
        reason = getattr(error, "abort_reason", None) or str(error) or type(error).__name__
        first = (block.raw or "").strip().splitlines()[:1]
        problems.append(
            f"{where}: cannot read {first[0][:60]!r}: {reason}" if first else f"{where}: {reason}"
        )
    return library.entries, problems


def import_bibtex(
    text: str,
    root: Path | str,
    venues: dict[str, Venue],
    options: Options,
    source: str = "<bibtex>",
) -> list[Imported]:
    """Records for every entry of ``text``; :class:`ImportFailure` lists every problem.

    Refuses entries whose title, arXiv id or DOI is already in the catalogue (named as such:
    the same paper is never proposed under an id with a letter suffix), entries whose record
    file exists, and entries that would get the same id as another in the same file.
    """
    root = Path(root)
    entries, problems = _parse(text, source)
    if not entries and not problems:
        problems.append(f"{source}: no BibTeX entry found")
    if options.one_paper() and len(entries) > 1:
        raise ImportFailure(
            [
                f"{source}: {', '.join(options.one_paper())} describe(s) one paper, but the file "
                f"has {len(entries)} entries: import them one at a time"
            ],
            usage=True,
        )
    seen = identities(root)
    results: list[Imported] = []
    ids: dict[str, str] = {}
    for entry in entries:
        fields = {
            f.key: f.value if isinstance(f.value, str) else str(f.value) for f in entry.fields
        }
        label = f"{source}: entry {entry.key!r}"
        try:
            record = record_fields(fields, venues, options, entry.key)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        notes = tidy(record)
        links = record["links"]
        # The same paper (arXiv id, DOI, title) is reported as such, never given an id suffix.
        same = same_paper(seen, record["title"], links["arxiv"], links["doi"])
        if same:
            problems.append(f"{label}: {already_message(same)}")
            continue
        path = root / f"{record['id']}.yaml"
        if path.exists():
            problems.append(
                f"{label}: {path} already exists and is not overwritten (if it is another paper, "
                f"save the --dry-run output as {record['id']}b.yaml with id {record['id']}b)"
            )
            continue
        if record["id"] in ids:
            problems.append(
                f"{label}: gives the id {record['id']!r}, as entry {ids[record['id']]!r} does"
            )
            continue
        ids[record["id"]] = entry.key
        results.append(Imported(entry.key, record, path, todo_fields(record), notes))
    if problems:
        raise ImportFailure(problems)
    return results
