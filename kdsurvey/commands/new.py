"""``kdsurvey new``: start a record from the arXiv API (``--arxiv ID``), Crossref (``--doi``) or
flags alone, propose its id by the key rule, write ``papers/<id>.yaml`` and validate it.

Flags always win over fetched metadata. What no service can know (category, tasks, loss,
summary) comes from flags or is written as ``null  # TODO`` (by
:func:`kdsurvey.records.writer.record_yaml`, shared with ``kdsurvey import bibtex``), so
validation points at each line still to fill in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kdsurvey import problems
from kdsurvey.commands.common import FORMAT, PAPERS, Failure, command, read_venues
from kdsurvey.files import write_atomic
from kdsurvey.importers.apis import add_api_options, api_base
from kdsurvey.importers.arxiv import ARXIV_INTERVAL, ArxivClient
from kdsurvey.importers.crossref import CrossrefClient
from kdsurvey.importers.httpclient import Http, RetryPolicy, SourceError
from kdsurvey.importers.newpaper import (
    NewPaperError,
    already_catalogued,
    build_fields,
    propose_id,
)
from kdsurvey.records.catalogue import (
    CatalogueError,
    display_path,
    load,
    loss_names,
    validate_record,
)
from kdsurvey.records.writer import add_curation_options, record_yaml

HELP = "start a record: from the arXiv API (--arxiv ID), Crossref (--doi) or flags"


def _others(root: Path, path: Path) -> int:
    """How many problems the catalogue has outside the new record (to mention, not to fail)."""
    try:
        load(root)
    except CatalogueError as exc:
        return sum(1 for p in exc.problems if p.path != display_path(path))
    return 0


def _add_arguments(p) -> None:
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
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="longest wait for each read from an API (default 15 s)",
    )
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
    mine = validate_record(text, path, venues, loss_names())
    others = 0 if args.dry_run else _others(root, path)
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
        raise Failure(
            f"{problems.text(mine)}{len(mine)} thing(s) to fix in {shown} (the TODO lines), "
            "then run `kdsurvey validate`",
            1,
        )
    if others:
        print(f"note: {others} problem(s) in other records (kdsurvey validate)", file=sys.stderr)


def register(subparsers) -> None:
    _add_arguments(command(subparsers, "new", run, HELP, (PAPERS, FORMAT)))
