"""Starting a record (``kdsurvey new``): fields from the arXiv API (``--arxiv ID``), Crossref
(``--doi``) or flags alone, and its id by the key rule. :mod:`kdsurvey.commands.new` writes and
validates it.

Flags always win over fetched metadata. What no service can know (category, tasks, loss,
summary) comes from flags or is written as ``null  # TODO`` (by
:func:`kdsurvey.records.record_yaml`, shared with ``kdsurvey import bibtex``), so validation
points at each line still to fill in.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdsurvey.importers.arxiv import ArxivEntry
from kdsurvey.importers.crossref import CrossrefWork
from kdsurvey.records.model import DEFAULT_ARXIV_CLASS, PARTICLES, ArxivId, citation_key

SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})


class NewPaperError(Exception):
    """The record cannot be started (bad id, already catalogued, nothing found)."""


def family_given(name: str) -> str:
    """``Family, Given`` from a name written ``Given Family`` (as arXiv writes them).

    Particles join the family name (``Luc van Gool`` -> ``van Gool, Luc``); a name that already
    has a comma is kept; a single word is returned as it is (validation will ask for the rest).
    """
    name = " ".join(name.split())
    if "," in name:
        family, _, given = name.partition(",")
        return f"{family.strip()}, {given.strip()}" if given.strip() else family.strip()
    words = name.split(" ")
    suffix = []
    while len(words) > 2 and words[-1].lower() in SUFFIXES:
        suffix.insert(0, words.pop())
    if len(words) < 2:
        return name
    start = len(words) - 1
    while start > 1 and words[start - 1].lower() in PARTICLES:
        start -= 1
    family = " ".join(words[start:] + suffix)
    return f"{family}, {' '.join(words[:start])}"


def clean_arxiv_id(value: str) -> str:
    """``2203.08679`` from ``arXiv:2203.08679v2``, ``https://arxiv.org/abs/2203.08679`` ..."""
    bare = value.strip()
    bare = re.sub(
        r"^(?:arxiv:\s*|https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)",
        "",
        bare,
        flags=re.IGNORECASE,
    )
    bare = re.sub(r"(?:\.pdf)?/?$", "", bare)
    bare = re.sub(r"v\d+$", "", bare)
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(ArxivId).validate_python(bare)
    except ValidationError:
        raise NewPaperError(f"{value!r} is not an arXiv id like 2203.08679 or cs/0112017") from None


def clean_doi(value: str) -> str:
    return re.sub(
        r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", value.strip(), flags=re.IGNORECASE
    )


def _venue_of(text: str | None, venues: dict) -> str | None:
    if not text:
        return None
    from kdsurvey.importers.bibtex import match_venue

    return match_venue(text, venues)


def fields_from_arxiv(entry: ArxivEntry, venues: dict) -> dict:
    """Record fields from an arXiv entry. The venue comes from the journal reference when it
    names a known venue (with the year it gives); otherwise the record is an arXiv preprint."""
    venue = _venue_of(entry.journal_ref, venues)
    year = entry.year
    notes = f"Started from the arXiv API (v{entry.version})."
    if venue:
        found = re.findall(r"(?<!\d)(?:19|20)\d{2}(?!\d)", entry.journal_ref or "")
        year = int(found[-1]) if found else year
        notes += f" Venue and year from arXiv's journal reference: {entry.journal_ref}."
    elif entry.journal_ref:
        notes += f" arXiv's journal reference (venue not recognised): {entry.journal_ref}."
    links = {"paper": f"https://arxiv.org/abs/{entry.id}", "arxiv": entry.id, "doi": entry.doi}
    if entry.primary_category and entry.primary_category != DEFAULT_ARXIV_CLASS:
        links["arxiv_class"] = entry.primary_category  # BibTeX's primaryClass (cs.CV if absent)
    return {
        "title": entry.title,
        "authors": [family_given(a) for a in entry.authors],
        "year": year,
        "venue": venue or ("arxiv" if "arxiv" in venues else None),
        "links": links,
        "notes": notes,
    }


def fields_from_crossref(work: CrossrefWork, venues: dict) -> dict:
    return {
        "title": work.title,
        "authors": [f"{family}, {given}" if given else family for family, given in work.authors],
        "year": work.print_year or work.year,
        "venue": _venue_of(work.container, venues),
        "links": {"paper": f"https://doi.org/{work.doi}", "doi": work.doi},
        "notes": "Started from Crossref" + (f" ({work.container})." if work.container else "."),
    }


def propose_id(root: Path, authors: list[str], year: int | None, title: str | None) -> str | None:
    """The key-rule id, with a letter suffix (b, c, ...) when another record has the key."""
    if not (authors and year and title):
        return None
    key = citation_key(authors[0], year, title)
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        if not (root / f"{key}{suffix}.yaml").exists():
            return key + suffix
    return None


def build_fields(
    args, venues: dict, arxiv_client=None, crossref_client=None, fetch: bool = True
) -> dict:
    """The record's fields: fetched metadata, overridden by every flag given. Without ``fetch``
    no client is asked: the flags alone, the arXiv id kept (an arXiv preprint unless --venue)."""
    fields: dict = {"links": {}}
    if args.arxiv and not fetch:
        arxiv_id = clean_arxiv_id(args.arxiv)
        fields = {
            "venue": "arxiv" if "arxiv" in venues else None,
            "links": {"paper": f"https://arxiv.org/abs/{arxiv_id}", "arxiv": arxiv_id},
            "notes": "Started from flags; the arXiv API was not asked.",
        }
    elif args.arxiv:
        arxiv_id = clean_arxiv_id(args.arxiv)
        entry = arxiv_client.fetch([arxiv_id]).get(arxiv_id)
        if entry is None:
            raise NewPaperError(f"the arXiv API has no paper {arxiv_id}")
        fields = fields_from_arxiv(entry, venues)
    elif args.doi and fetch:
        doi = clean_doi(args.doi)
        work = crossref_client.work(doi)
        if work is None:
            raise NewPaperError(f"Crossref has no work {doi}: give --title, --author and --year")
        fields = fields_from_crossref(work, venues)
    links = fields.setdefault("links", {})
    flags = {
        "title": args.title,
        "year": args.year,
        "venue": args.venue,
        "category": args.category,
        "volume": args.volume,
        "number": args.number,
        "pages": args.pages,
    }
    fields.update({k: v for k, v in flags.items() if v is not None})
    if args.author:
        fields["authors"] = [family_given(a) for a in args.author]
    if args.summary:
        fields["summary"] = " ".join(args.summary.split())
    if args.notes:
        fields["notes"] = " ".join(args.notes.split())
    fields["tasks"] = list(dict.fromkeys(args.task or ()))
    fields["loss"] = list(dict.fromkeys(args.loss or ()))
    if args.doi:
        links["doi"] = clean_doi(args.doi)
        links.setdefault("paper", f"https://doi.org/{links['doi']}")
    for name in ("paper", "code", "project"):
        if getattr(args, name):
            links[name] = getattr(args, name)
    if args.code_official is not None:
        links["code_official"] = args.code_official
    fields["links"] = {k: v for k, v in links.items() if v is not None}
    if fields.get("title"):
        fields["title"] = " ".join(str(fields["title"]).split())
    return fields
