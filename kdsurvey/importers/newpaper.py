"""``kdsurvey new``: start a record from the arXiv API (``--arxiv ID``), Crossref (``--doi``) or
flags alone, propose its id by the key rule, write ``papers/<id>.yaml`` and validate it.

Flags always win over fetched metadata. What no service can know (category, tasks, loss,
summary) comes from flags or is written as ``null  # TODO`` (by
:func:`kdsurvey.records.record_yaml`, shared with ``kdsurvey import bibtex``), so validation
points at each line still to fill in.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from kdsurvey.importers.sources import (
    ARXIV_INTERVAL,
    ArxivEntry,
    CrossrefWork,
    add_api_options,
    api_base,
)
from kdsurvey.records.catalogue import (
    CATEGORIES_FILE,
    VENUES_FILE,
    CatalogueError,
    display_path,
    identities,
    identity_keys,
    load,
    read_table,
)
from kdsurvey.records.model import PARTICLES, ArxivId, citation_key
from kdsurvey.records.writer import add_curation_options, record_yaml

HELP = "start a record: from the arXiv API (--arxiv ID), Crossref (--doi) or flags"

DEFAULT_ARXIV_CLASS = "cs.CV"  # what a record without links.arxiv_class is taken to be
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


def already_catalogued(
    root: Path, title: str | None, arxiv: str | None, doi: str | None
) -> str | None:
    """The record file that already has this title, arXiv id or DOI (read leniently)."""
    seen = identities(root)
    return next((seen[key] for key in identity_keys(title, arxiv, doi) if key in seen), None)


def build_fields(args, venues: dict, arxiv_client=None, crossref_client=None) -> dict:
    """The record's fields: fetched metadata, overridden by every flag given."""
    fields: dict = {"links": {}}
    if args.arxiv:
        arxiv_id = clean_arxiv_id(args.arxiv)
        entry = arxiv_client.fetch([arxiv_id]).get(arxiv_id)
        if entry is None:
            raise NewPaperError(f"the arXiv API has no paper {arxiv_id}")
        fields = fields_from_arxiv(entry, venues)
    elif args.doi and not (args.title and args.author and args.year):
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


def validate(root: Path, path: Path, text: str, dry_run: bool) -> tuple[list, int]:
    """Problems of the new record (and how many other records have problems).

    A dry run validates the record beside a copy of the venues and categories only.
    """
    if dry_run:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name in (VENUES_FILE, CATEGORIES_FILE):
                if (root / name).exists():
                    shutil.copy(root / name, folder / name)
            (folder / path.name).write_text(text, encoding="utf-8")
            try:
                load(folder)
            except CatalogueError as exc:
                shown = display_path(path)
                return [
                    p.__class__(shown, p.line, p.field, p.message)
                    for p in exc.problems
                    if p.path.endswith(path.name)
                ], 0
            return [], 0
    try:
        load(root)
    except CatalogueError as exc:
        shown = display_path(path)
        mine = [p for p in exc.problems if p.path == shown]
        return mine, len(exc.problems) - len(mine)
    return [], 0


def add_arguments(p) -> None:
    source = p.add_argument_group("where the metadata comes from")
    source.add_argument("--arxiv", metavar="ID", help="fetch from the arXiv API: 2203.08679")
    source.add_argument(
        "--doi",
        metavar="DOI",
        help="the DOI; without --title/--author/--year, fetch them from Crossref",
    )
    fields = p.add_argument_group("fields (override what was fetched)")
    fields.add_argument("--title")
    fields.add_argument(
        "--author",
        action="append",
        metavar="NAME",
        help="'Family, Given' (or 'Given Family'); repeat, in order",
    )
    fields.add_argument("--year", type=int)
    fields.add_argument("--venue", metavar="KEY", help="a key of papers/venues.yaml")
    add_curation_options(fields)
    fields.add_argument("--paper", metavar="URL", help="the page a reader should open first")
    fields.add_argument("--code", metavar="URL", help="https://github.com/<owner>/<repo>")
    official = fields.add_mutually_exclusive_group()
    official.add_argument(
        "--official",
        dest="code_official",
        action="store_true",
        default=None,
        help="the code is the authors' own",
    )
    official.add_argument(
        "--unofficial",
        dest="code_official",
        action="store_false",
        help="the code is someone else's",
    )
    fields.add_argument("--project", metavar="URL")
    fields.add_argument("--volume")
    fields.add_argument("--number")
    fields.add_argument("--pages")
    fields.add_argument("--notes")
    p.add_argument("--dry-run", action="store_true", help="print the YAML, write nothing")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S")
    add_api_options(p, "arxiv", "crossref")


def cli(args) -> None:
    """``kdsurvey new``."""
    from kdsurvey.cli import Failure
    from kdsurvey.files import write_atomic
    from kdsurvey.importers.sources import (
        ArxivClient,
        CrossrefClient,
        Http,
        RetryPolicy,
        SourceError,
    )
    from kdsurvey.records.model import Venue

    root = Path(args.papers)
    if not root.is_dir():
        raise Failure(f"{root}: no such folder", 2)
    if not (args.arxiv or args.doi or args.title):
        raise Failure(
            "say where the paper comes from: --arxiv ID, --doi DOI, or --title with "
            "--author and --year (and --venue, --paper)",
            2,
        )
    problems: list = []
    venues = read_table(root / VENUES_FILE, Venue, problems)
    if problems:
        raise Failure("\n".join(map(str, problems)))
    http = Http(RetryPolicy(timeout=args.timeout))
    try:
        arxiv = ArxivClient(
            http,
            api_base(args, "arxiv"),
            interval=ARXIV_INTERVAL,
        )
        crossref = CrossrefClient(http, api_base(args, "crossref"))
        fields = build_fields(args, venues, arxiv, crossref)
    except NewPaperError as exc:
        raise Failure(str(exc), 1) from None
    except SourceError as exc:
        raise Failure(f"{exc.message} (try again later, or give the fields as flags)") from None
    finally:
        http.close()

    links = fields.get("links", {})
    clash = already_catalogued(root, fields.get("title"), links.get("arxiv"), links.get("doi"))
    if clash:
        raise Failure(f"already in the catalogue: {clash}")
    record_id = propose_id(
        root, fields.get("authors") or [], fields.get("year"), fields.get("title")
    )
    if record_id is None:
        raise Failure("cannot propose an id: the record needs a title, a first author and a year")
    fields = {"id": record_id, **fields}
    text = record_yaml(fields)
    path = root / f"{record_id}.yaml"
    if not args.dry_run:
        write_atomic(path, text)
    mine, others = validate(root, path, text, args.dry_run)
    shown = display_path(path)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "id": record_id,
                    "path": shown,
                    "written": not args.dry_run,
                    "record": text,
                    "problems": [p.as_dict() for p in mine],
                },
                indent=2,
            )
        )
    elif args.dry_run:
        sys.stdout.write(text)
    else:
        print(f"wrote {shown}", file=sys.stderr)
    if mine:
        listed = "\n".join(map(str, mine))
        raise Failure(
            f"{listed}\n{len(mine)} thing(s) to fix in {shown} (the TODO lines), "
            "then run `kdsurvey validate`",
            1,
        )
    if others:
        print(f"note: {others} problem(s) in other records (kdsurvey validate)", file=sys.stderr)
