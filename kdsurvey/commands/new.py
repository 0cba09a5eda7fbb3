"""``kdsurvey new``: start a record from the arXiv API (``--arxiv ID``), Crossref (``--doi``) or
flags alone, propose its id by the key rule, write ``papers/<id>.yaml`` and validate it.

Flags always win over fetched metadata; with ``--title``, ``--author`` and ``--year`` (or
``--offline``) nothing is fetched and ``--arxiv``/``--doi`` are only kept. A paper already in the
catalogue is refused before any request. What no service can know (category, tasks, loss,
summary) comes from flags or is written as ``null  # TODO`` (by
:func:`kdsurvey.records.writer.record_yaml`, shared with ``kdsurvey import bibtex``), so
validation points at each line still to fill in.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from kdsurvey import problems
from kdsurvey.commands.common import (
    FORMAT,
    PAPERS,
    Failure,
    add_timeout,
    already_catalogued,
    check_venue,
    command,
    read_tasks,
    read_venues,
    todo_note,
)
from kdsurvey.files import write_atomic
from kdsurvey.importers.apis import add_api_options, api_base
from kdsurvey.importers.arxiv import ARXIV_INTERVAL, ArxivClient
from kdsurvey.importers.crossref import CrossrefClient
from kdsurvey.importers.httpclient import Http, RetryPolicy, SourceError
from kdsurvey.importers.newpaper import (
    NewPaperError,
    build_fields,
    clean_arxiv_id,
    clean_doi,
    propose_id,
)
from kdsurvey.records.catalogue import (
    CatalogueError,
    display_path,
    identities,
    load,
    loss_names,
    same_paper,
    validate_record,
)
from kdsurvey.records.writer import (
    add_curation_options,
    add_record_options,
    record_yaml,
    todo_fields,
)

HELP = "start a record: from the arXiv API (--arxiv ID), Crossref (--doi) or flags"
EPILOG = """\
No API is asked when --title, --author and --year are given (or with --offline); --arxiv and
--doi are then only kept in the record. A paper already in the catalogue (same arXiv id, DOI or
title) is refused before anything is fetched.

exit codes: 0 the record was written (or, with --dry-run, printed); fields left as TODO do not
fail the command, stderr names them and `kdsurvey validate` fails until they are filled in.
1 the record has other problems, the paper is already catalogued, or an API failed;
2 bad usage (no source, a malformed id, an unknown --venue, --offline without the fields)."""


def _others(root: Path, path: Path) -> int:
    """How many problems the catalogue has outside the new record (to mention, not to fail)."""
    try:
        load(root)
    except CatalogueError as exc:
        return sum(1 for p in exc.problems if p.path != display_path(path))
    return 0


def _add_arguments(p) -> None:
    source = p.add_argument_group("where the metadata comes from")
    source.add_argument(
        "--arxiv",
        metavar="ID",
        help="the arXiv id (2203.08679), fetched from the arXiv API unless the fields are flags",
    )
    source.add_argument(
        "--doi",
        metavar="DOI",
        help="the DOI; without --title/--author/--year, fetch them from Crossref",
    )
    source.add_argument(
        "--offline",
        action="store_true",
        help="ask no API: the fields come from flags (--title, --author, --year needed)",
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
    add_curation_options(fields)
    add_record_options(fields)
    fields.add_argument("--project", metavar="URL")
    fields.add_argument("--volume")
    fields.add_argument("--number")
    fields.add_argument("--pages")
    fields.add_argument("--notes")
    p.add_argument("--dry-run", action="store_true", help="print the YAML, write nothing")
    add_timeout(p, "an API")
    add_api_options(p, "arxiv", "crossref")


def run(args) -> None:
    root = Path(args.papers)
    if not root.is_dir():
        raise Failure(f"{root}: no such folder", 2)
    if not (args.arxiv or args.doi or args.title):
        raise Failure(
            "say where the paper comes from: --arxiv ID, --doi DOI, or --title with "
            "--author and --year (and --venue, --paper)",
            2,
        )
    venues = read_venues(root)
    check_venue(args.venue, venues)
    try:
        arxiv_id = clean_arxiv_id(args.arxiv) if args.arxiv else None
    except NewPaperError as exc:
        raise Failure(str(exc), 2) from None
    doi = clean_doi(args.doi) if args.doi else None
    # The same paper twice is refused before any request (the id and DOI given are enough).
    already_catalogued(same_paper(identities(root), args.title, arxiv_id, doi))
    given = args.title and args.author and args.year
    if args.offline and not given:
        missing = [f"--{n}" for n in ("title", "author", "year") if not getattr(args, n)]
        raise Failure(f"--offline asks no API: give {', '.join(missing)} too", 2)
    fields = _fields(args, venues, fetch=not given)
    links = fields.get("links", {})
    if not given:  # what was fetched may name a catalogued paper the flags did not
        already_catalogued(
            same_paper(identities(root), fields.get("title"), links.get("arxiv"), links.get("doi"))
        )
    record_id = propose_id(
        root, fields.get("authors") or [], fields.get("year"), fields.get("title")
    )
    if record_id is None:
        raise Failure("cannot propose an id: the record needs a title, a first author and a year")
    fields = {"id": record_id, **fields}
    _write(args, root, record_id, fields, venues)


def _fields(args, venues: dict, fetch: bool) -> dict:
    """The record's fields, from the APIs when ``fetch`` (and a source is given), else flags."""
    if not fetch:
        return build_fields(args, venues, fetch=False)
    http = Http(RetryPolicy(timeout=args.timeout))
    try:
        arxiv = ArxivClient(http, api_base(args, "arxiv"), interval=ARXIV_INTERVAL)
        crossref = CrossrefClient(http, api_base(args, "crossref"))
        return build_fields(args, venues, arxiv, crossref)
    except NewPaperError as exc:
        raise Failure(str(exc), 1) from None
    except SourceError as exc:
        raise Failure(f"{exc.message} (try again later, or give the fields as flags)") from None
    finally:
        http.close()


def _write(args, root: Path, record_id: str, fields: dict, venues: dict) -> None:
    """Write (or print) the record; fail only for problems other than the TODO fields."""
    text = record_yaml(fields)
    path = root / f"{record_id}.yaml"
    if not args.dry_run:
        write_atomic(path, text)
    todo = todo_fields(fields)
    found = validate_record(text, path, venues, loss_names(), read_tasks(root))
    if args.dry_run:  # the lines are those of the YAML printed; no file is named
        found = [replace(p, path="<stdout>") for p in found]
    mine = [p for p in found if p.field.split("[")[0] not in todo]
    shown = None if args.dry_run else display_path(path)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "id": record_id,
                    "path": shown,
                    "written": not args.dry_run,
                    "record": text,
                    "todo": todo,
                    "problems": [p.as_dict() for p in found],
                },
                indent=2,
            )
        )
    elif args.dry_run:
        sys.stdout.write(text)
    if mine:
        what = "printed above" if args.dry_run else f"in {shown}"
        raise Failure(f"{problems.text(mine)}{len(mine)} problem(s) {what} to fix", 1)
    if todo and not args.dry_run and args.format == "text":
        sys.stderr.write(problems.text([p for p in found if p not in mine]))
    print(todo_note(todo, shown), file=sys.stderr)
    others = 0 if args.dry_run else _others(root, path)
    if others:
        print(f"note: {others} problem(s) in other records (kdsurvey validate)", file=sys.stderr)


def register(subparsers) -> None:
    parser = command(subparsers, "new", run, HELP, (PAPERS, FORMAT))
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_arguments(parser)
