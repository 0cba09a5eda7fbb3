"""``kdsurvey export bibtex|csl-json|json|csv``: citations of the selected records, to stdout or,
atomically, to ``-o FILE``; ``kdsurvey export results``: the numbers the records report."""

from __future__ import annotations

import sys

from kdsurvey.commands.common import Failure, command, group, load_catalogue
from kdsurvey.files import write_atomic
from kdsurvey.records.model import Category
from kdsurvey.records.unknowns import export_warnings

FORMATS = (
    ("bibtex", "BibTeX (UTF-8 for biber; --ascii for classic bibtex)"),
    ("csl-json", "CSL-JSON, as Zotero and pandoc read it"),
    ("json", "the records as JSON, venues expanded"),
    ("csv", "one CSV row per record"),
)


def run(args) -> None:
    """Citations of the selected records to stdout or, atomically, to ``-o FILE``."""
    from kdsurvey.exporters import citations

    catalogue = load_catalogue(args)
    try:
        papers = citations.select(catalogue, args.category, args.ids, args.year_from)
    except KeyError as exc:
        raise Failure(exc.args[0], 2) from None
    if not papers:
        raise Failure("no record matches the selection (--category, --ids, --year-from)", 2)
    try:
        if args.export_command == "bibtex":
            text = citations.bibtex(catalogue, papers, ascii=args.ascii)
            for line in export_warnings(papers):
                print(line, file=sys.stderr)
        else:
            text = {
                "csl-json": citations.csl_json,
                "json": citations.as_json,
                "csv": citations.as_csv,
            }[args.export_command](catalogue, papers)
    except citations.CitationError as exc:
        raise Failure(str(exc)) from None
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def run_results(args) -> None:
    """The selected results (``--benchmark``, ``--paper``) as JSON or CSV."""
    from kdsurvey.exporters import results_export

    catalogue = load_catalogue(args)
    try:
        selected = results_export.rows(catalogue, args.benchmark, args.paper)
    except KeyError as exc:
        raise Failure(exc.args[0], 2) from None
    if args.format == "json":
        text = results_export.as_json(selected)
    else:
        text = results_export.as_csv(selected)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def register(subparsers) -> None:
    from kdsurvey.exporters import results_export

    export = group(
        subparsers,
        "export",
        "citations of the records (BibTeX, CSL-JSON, JSON, CSV) or the results they report",
    )
    results_export.add_arguments(command(export, "results", run_results, results_export.HELP))
    for name, what in FORMATS:
        p = command(export, name, run, f"export {what}")
        p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
        p.add_argument("--category", choices=[c.value for c in Category], help="only this category")
        p.add_argument("--ids", nargs="+", metavar="ID", help="only these record ids")
        p.add_argument("--year-from", type=int, metavar="Y", help="only papers from year Y on")
        if name == "bibtex":
            p.add_argument(
                "--ascii",
                action="store_true",
                help='escape non-ASCII letters ({\\"o}) for classic bibtex',
            )
