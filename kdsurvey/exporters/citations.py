"""Citations out of the catalogue: BibTeX, CSL-JSON, JSON and CSV.

BibTeX is built as a :class:`bibtexparser.Library` of :class:`bibtexparser.model.Entry` objects and
serialised by bibtexparser's writer; this module only turns record values into correct LaTeX:

* entry types by venue kind: ``@inproceedings`` + ``booktitle`` (conferences), ``@article`` +
  ``journal`` (journals), ``@misc`` + ``eprint``/``archivePrefix``/``primaryClass`` (preprints,
  for biblatex) and ``howpublished = {arXiv preprint arXiv:<id>}`` (for classic styles such as
  ``plain`` and ``IEEEtran``, which ignore ``eprint``);
  the key is the record id; ``doi`` and ``url`` (the record's paper link) where known;
* authors as ``Family, Given and ...``;
* words of a title that a style must not lowercase are braced (``{KD}``, ``{CNN}``, ``{FitNets}``,
  ``{3D}``, ``{X-Ray}``); a ``{...}`` group already in a record's title is kept as it is, not
  braced again;
* LaTeX specials are escaped (``\\&``, ``\\%``, ``\\_``, ``\\#``, ...). Non-ASCII letters stay UTF-8
  (what biber expects), or become LaTeX accents (``{\\"o}``) with ``ascii=True`` for classic
  bibtex. Symbols that LaTeX cannot typeset from UTF-8 (``α``, ``×``) become macros in both modes.

Output is deterministic: entries sorted by key, fields in a fixed order, aligned values.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
from collections.abc import Iterable

import bibtexparser
from bibtexparser import model
from bibtexparser.middlewares import default_unparse_stack

from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import DEFAULT_ARXIV_CLASS, Paper, Venue, VenueKind, family_name
from kdsurvey.records.unknowns import bibtex_authors, no_author_fields

ENTRY_TYPES = {
    VenueKind.conference: "inproceedings",
    VenueKind.journal: "article",
    VenueKind.preprint: "misc",
}
CSL_TYPES = {
    VenueKind.conference: "paper-conference",
    VenueKind.journal: "article-journal",
    VenueKind.preprint: "article",
}

# Characters LaTeX treats specially, and how a BibTeX value spells them. Braces are handled apart:
# BibTeX counts ``\{`` as a brace, so a lone brace must be written as a macro.
_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "{": r"\textbraceleft{}",
    "}": r"\textbraceright{}",
}
_PLAIN = re.compile("[^" + re.escape("".join(_SPECIALS)) + "\x80-\U0010ffff]*")  # as written
_WORD = re.compile(r"[^\W_]+")
# A hyphenated compound with a one-capital part (``X-Ray``, ``U-Net``, ``K-Means``): classic styles
# would lowercase it to "x-ray", and no part alone has two capitals, so the whole is braced.
_LETTER_COMPOUND = re.compile(r"[^\W_]+(?:-[^\W_]+)+")
_DOTLESS_I = re.compile(r"\\([`'^\"~])\\i(?![A-Za-z])")

_encoder = None


class CitationError(ValueError):
    """A record that cannot be written in the format asked for (e.g. no ASCII spelling)."""


def _latex_encoder():
    global _encoder
    if _encoder is None:
        from pylatexenc.latexencode import UnicodeToLatexEncoder

        # pylatexenc logs every character it cannot encode; we report those ourselves.
        logging.getLogger("pylatexenc.latexencode").setLevel(logging.CRITICAL)
        _encoder = UnicodeToLatexEncoder(
            non_ascii_only=True,
            replacement_latex_protection="braces-all",
            unknown_char_policy="fail",
        )
    return _encoder


def _utf8_ok(char: str) -> bool:
    """Whether a non-ASCII character stays UTF-8 in a UTF-8 .bib: letters of the Latin script and
    punctuation such as dashes and quotes. Others (Greek, math symbols) get a LaTeX macro."""
    if "LATIN" in unicodedata.name(char, ""):
        return True
    return unicodedata.category(char)[0] in "PZ" or char in "\u00b4\u00a8\u00b8"


def _non_ascii(char: str, ascii: bool) -> str:
    if not ascii and _utf8_ok(char):
        return char
    try:
        latex = _latex_encoder().unicode_to_latex(char)
    except ValueError:
        if ascii:
            raise CitationError(
                f"no LaTeX spelling for {char!r} (U+{ord(char):04X}): export without --ascii"
            ) from None
        return char  # no macro known: leave it to a Unicode engine
    # {\'\i} -> {\'i}: biber decodes \i + accent into a combining sequence that pdflatex cannot
    # typeset, while LaTeX's fonts put an accent on a dotless i by themselves (T1 all of them).
    return _DOTLESS_I.sub(r"\\\1i", latex)


def latex_text(text: str, ascii: bool = False) -> str:
    """``text`` as the value of a BibTeX field: specials escaped, non-ASCII per ``ascii``."""
    if _PLAIN.fullmatch(text):  # most text: nothing to escape (a third of the site's BibTeX time)
        return text
    out = []
    for char in text:
        if char in _SPECIALS:
            out.append(_SPECIALS[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            out.append(_non_ascii(char, ascii))
    return "".join(out)


def needs_protection(word: str) -> bool:
    """Whether a style must not change the case of ``word``: two or more capitals (``KD``,
    ``FitNets``), a capital after the first letter (``iPhone``), or a digit and a capital (``3D``).
    """
    capitals = sum(c.isupper() for c in word)
    return (
        capitals >= 2
        or any(c.isupper() for c in word[1:])
        or (capitals >= 1 and any(c.isdigit() for c in word))
    )


def _groups(title: str) -> list[tuple[bool, str]]:
    """Split a title into (is_group, text) parts: balanced top-level ``{...}`` groups and the rest.
    Braces without a partner stay in the text parts (and are escaped there)."""
    stack, pairs = [], {}
    for i, char in enumerate(title):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    parts, start, i = [], 0, 0
    while i < len(title):
        if i in pairs:
            if start < i:
                parts.append((False, title[start:i]))
            parts.append((True, title[i + 1 : pairs[i]]))
            start = i = pairs[i] + 1
        else:
            i += 1
    if start < len(title):
        parts.append((False, title[start:]))
    return parts


def _group_text(text: str, ascii: bool) -> str:
    """The inside of a kept ``{...}`` group: balanced inner braces stay, the rest is escaped."""
    return "".join(
        "{" + _group_text(part, ascii) + "}" if is_group else latex_text(part, ascii)
        for is_group, part in _groups(text)
    )


def latex_title(title: str, ascii: bool = False) -> str:
    """A title for BibTeX: case-sensitive words braced, specials escaped; the record's own
    capitalisation is kept, and ``{...}`` groups already in it are not braced again."""
    out = []
    for is_group, part in _groups(title):
        if is_group:
            out.append("{" + _group_text(part, ascii) + "}")
            continue
        last = 0
        for match in _LETTER_COMPOUND.finditer(part):
            if any(len(w) == 1 and w.isupper() for w in match.group().split("-")):
                out.append(_protect_words(part[last : match.start()], ascii))
                out.append("{" + latex_text(match.group(), ascii) + "}")
                last = match.end()
        out.append(_protect_words(part[last:], ascii))
    return "".join(out)


def _protect_words(text: str, ascii: bool) -> str:
    """``text`` escaped, its case-sensitive words braced."""
    out, last = [], 0
    for match in _WORD.finditer(text):
        out.append(latex_text(text[last : match.start()], ascii))
        word = latex_text(match.group(), ascii)
        out.append("{" + word + "}" if needs_protection(match.group()) else word)
        last = match.end()
    out.append(latex_text(text[last:], ascii))
    return "".join(out)


def latex_name(author: str, ascii: bool = False) -> str:
    """``Family, Given`` for BibTeX; a name word ``and`` is braced so it does not split the list."""
    family, _, given = author.partition(",")
    words = [
        [("{" + w + "}" if w.lower() == "and" else latex_text(w, ascii)) for w in part.split()]
        for part in (family, given)
    ]
    return ", ".join(" ".join(w) for w in words if w)


def select(
    catalogue: Catalogue,
    category: str | None = None,
    ids: Iterable[str] | None = None,
    year_from: int | None = None,
) -> list[Paper]:
    """The papers a command asked for, sorted by id. Unknown ids raise ``KeyError``."""
    papers = catalogue.papers
    if ids:
        known = {p.id: p for p in papers}
        unknown = sorted(set(ids) - set(known))
        if unknown:
            raise KeyError(f"no record with id {', '.join(unknown)}")
        papers = [known[i] for i in sorted(set(ids))]
    if category:
        papers = [p for p in papers if p.category.value == category]
    if year_from is not None:
        papers = [p for p in papers if p.year >= year_from]
    return sorted(papers, key=lambda p: p.id)


def _papers(catalogue: Catalogue, papers: Iterable[Paper] | None) -> list[Paper]:
    return sorted(catalogue.papers if papers is None else papers, key=lambda p: p.id)


def _venue(catalogue: Catalogue, paper: Paper) -> Venue:
    try:
        return catalogue.venues[paper.venue]
    except KeyError:
        raise CitationError(f"{paper.id}: unknown venue {paper.venue!r}") from None


def entry(paper: Paper, venue: Venue, ascii: bool = False) -> model.Entry:
    """The BibTeX entry of one record."""
    names, partial = bibtex_authors(paper)
    fields: list[tuple[str, str]] = [
        ("author", " and ".join([*(latex_name(a, ascii) for a in names), *["others"] * partial])),
        ("title", latex_title(paper.title, ascii)),
    ]
    if venue.kind == VenueKind.preprint and paper.links.arxiv:
        # Classic styles (plain, IEEEtran, natbib's) ignore `eprint`: without this an arXiv-only
        # entry would print no identifier at all. The wording is Google Scholar's.
        fields.append(("howpublished", f"arXiv preprint arXiv:{paper.links.arxiv}"))
    if venue.kind == VenueKind.conference:
        fields.append(("booktitle", latex_text(venue.name, ascii)))
    elif venue.kind == VenueKind.journal:
        fields.append(("journal", latex_text(venue.name, ascii)))
    fields.append(("volume", paper.volume))
    # In @inproceedings, bibtex styles read `number` as a number in a series (and warn without a
    # series); a conference record's number is the part of a proceedings volume (AAAI issues),
    # which is biblatex's `part`.
    number_field = "part" if venue.kind == VenueKind.conference else "number"
    fields.append((number_field, paper.number))
    fields.append(("pages", paper.pages))
    fields.append(("year", str(paper.year)))
    if venue.kind == VenueKind.preprint and paper.links.arxiv:
        fields += [
            ("eprint", paper.links.arxiv),
            ("archivePrefix", "arXiv"),
            ("primaryClass", paper.links.arxiv_class or DEFAULT_ARXIV_CLASS),
        ]
    fields += no_author_fields(paper, latex_text(paper.title, ascii))
    fields.append(("doi", paper.links.doi))
    fields.append(("url", str(paper.links.paper)))
    fields = [(key, value) for key, value in fields if value]
    return model.Entry(
        ENTRY_TYPES[venue.kind], paper.id, [model.Field(key, value) for key, value in fields]
    )


def library(
    catalogue: Catalogue, papers: Iterable[Paper] | None = None, ascii: bool = False
) -> bibtexparser.Library:
    """A bibtexparser library of ``papers`` (all by default), sorted by key."""
    lib = bibtexparser.Library()
    problems = []
    for paper in _papers(catalogue, papers):
        try:
            lib.add(entry(paper, _venue(catalogue, paper), ascii))
        except CitationError as exc:
            problems.append(exc if str(exc).startswith(paper.id) else f"{paper.id}: {exc}")
    if problems:
        raise CitationError("\n".join(map(str, problems)))
    return lib


def _format() -> bibtexparser.BibtexFormat:
    fmt = bibtexparser.BibtexFormat()
    fmt.indent = "  "
    fmt.value_column = len("archivePrefix = ")  # the same alignment whatever the selection
    fmt.block_separator = "\n"
    return fmt


def entries(
    catalogue: Catalogue, papers: Iterable[Paper] | None = None, ascii: bool = False
) -> dict[str, str]:
    """Each paper's BibTeX entry (all by default), by id in key order: what :func:`bibtex`
    writes, one entry at a time (the site shows each on its paper's page). Raises
    :class:`CitationError` for records that cannot be written (e.g. no ASCII spelling)."""
    stack = default_unparse_stack(allow_inplace_modification=True)
    out = {}
    for item in library(catalogue, papers, ascii).entries:
        lib = bibtexparser.Library([item])
        out[item.key] = bibtexparser.write_string(lib, unparse_stack=stack, bibtex_format=_format())
    return out


def join_entries(written: Iterable[str]) -> str:
    """The BibTeX file of entries written by :func:`entries`: one blank line between them."""
    return "\n".join(written)


def bibtex(catalogue: Catalogue, papers: Iterable[Paper] | None = None, ascii: bool = False) -> str:
    """The BibTeX of ``papers`` (all by default): UTF-8, or pure ASCII with ``ascii=True``.

    Used by ``kdsurvey export bibtex``; the site takes the same entries from :func:`entries`.
    Raises :class:`CitationError` for records that cannot be written (e.g. no ASCII spelling).
    """
    return join_entries(entries(catalogue, papers, ascii).values())


def _csl_pages(pages: str | None) -> str | None:
    return pages.replace("--", "-") if pages else None


def csl_item(paper: Paper, venue: Venue) -> dict:
    """One CSL-JSON item (what Zotero, pandoc and citeproc read)."""
    item = {
        "id": paper.id,
        "type": CSL_TYPES[venue.kind],
        "title": paper.title,
        "author": [
            {"family": family_name(a), "given": a.split(",", 1)[1].strip()} for a in paper.authors
        ],
        "issued": {"date-parts": [[paper.year]]},
    }
    if paper.unconfirmed:
        item["unconfirmed"] = dict(paper.unconfirmed)  # not CSL: citeproc ignores it
    if venue.kind == VenueKind.preprint:
        item["publisher"] = venue.name
        if paper.links.arxiv:
            item["number"] = f"arXiv:{paper.links.arxiv}"
    else:
        item["container-title"] = venue.name
        item["container-title-short"] = venue.short
        if venue.publisher:
            item["publisher"] = venue.publisher
    optional = {
        "volume": paper.volume,
        "issue": paper.number,
        "page": _csl_pages(paper.pages),
        "DOI": paper.links.doi,
        "URL": str(paper.links.paper),
    }
    item.update({k: v for k, v in optional.items() if v})
    return item


def csl_json(catalogue: Catalogue, papers: Iterable[Paper] | None = None) -> str:
    """CSL-JSON: a list of items sorted by id."""
    items = [csl_item(p, _venue(catalogue, p)) for p in _papers(catalogue, papers)]
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def record_data(paper: Paper, venue: Venue, key: str) -> dict:
    """A record as data, with ``venue`` expanded to ``{"key": ..., <venues.yaml fields>}``."""
    data = paper.model_dump(mode="json")
    data["venue"] = {"key": key, **venue.model_dump(mode="json")}
    return data


def as_json(catalogue: Catalogue, papers: Iterable[Paper] | None = None) -> str:
    """The records as JSON: a list sorted by id, every field present (``null`` when unset)."""
    items = [record_data(p, _venue(catalogue, p), p.venue) for p in _papers(catalogue, papers)]
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


#: CSV columns, in order; list-valued fields are joined with "; ".
CSV_COLUMNS = (
    "id",
    "title",
    "authors",
    "year",
    "venue",
    "venue_short",
    "venue_name",
    "venue_kind",
    "category",
    "tasks",
    "loss",
    "paper",
    "arxiv",
    "doi",
    "code",
    "code_official",
    "project",
    "volume",
    "number",
    "pages",
    "summary",
    "notes",
    "unconfirmed",
)


def csv_row(paper: Paper, venue: Venue) -> dict:
    links = paper.links

    def text(value) -> str:
        return "" if value is None else str(value)

    return {
        "id": paper.id,
        "title": paper.title,
        "authors": "; ".join(paper.authors),
        "year": paper.year,
        "venue": paper.venue,
        "venue_short": venue.short,
        "venue_name": venue.name,
        "venue_kind": venue.kind.value,
        "category": paper.category.value,
        "tasks": "; ".join(paper.tasks),
        "loss": "; ".join(paper.loss),
        "paper": text(links.paper),
        "arxiv": text(links.arxiv),
        "doi": text(links.doi),
        "code": text(links.code),
        "code_official": "" if links.code_official is None else str(links.code_official).lower(),
        "project": text(links.project),
        "volume": text(paper.volume),
        "number": text(paper.number),
        "pages": text(paper.pages),
        "summary": paper.summary,
        "notes": text(paper.notes),
        # ``field: sentence`` pairs, one per line
        "unconfirmed": "\n".join(f"{k}: {v}" for k, v in paper.unconfirmed.items()),
    }


def as_csv(catalogue: Catalogue, papers: Iterable[Paper] | None = None) -> str:
    """One row per paper sorted by id, the columns of :data:`CSV_COLUMNS`, ``\\n`` line ends."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for paper in _papers(catalogue, papers):
        writer.writerow(csv_row(paper, _venue(catalogue, paper)))
    return out.getvalue()
