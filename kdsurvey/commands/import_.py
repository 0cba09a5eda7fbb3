"""``kdsurvey import bibtex FILE``: BibTeX entries -> papers/<id>.yaml (the YAML on stdout with
``--dry-run``). Named ``import_`` because ``import`` is a Python keyword."""

from __future__ import annotations

import sys
from pathlib import Path

from kdsurvey.commands.common import Failure, command, group, read_venues
from kdsurvey.files import write_atomic
from kdsurvey.records.catalogue import loss_names
from kdsurvey.records.writer import add_curation_options


def run(args) -> None:
    """BibTeX entries -> papers/<id>.yaml (or the YAML on stdout with --dry-run)."""
    from kdsurvey.importers.bibtex import ImportFailure, Options, import_bibtex

    venues = read_venues(Path(args.papers))
    unknown = sorted(set(args.loss or ()) - loss_names())
    if unknown:
        raise Failure(f"no loss {', '.join(unknown)} in kdsurvey.losses (kdsurvey losses list)", 2)
    summary = " ".join(args.summary.split()) if args.summary else None
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"{args.file}: {exc}", 2) from None
    options = Options(
        args.category,
        list(dict.fromkeys(args.task or ())),
        list(dict.fromkeys(args.loss or ())),
        summary,
    )
    try:
        records = import_bibtex(text, args.papers, venues, options, source=args.file)
    except ImportFailure as exc:
        raise Failure(str(exc) + f"\nnothing written ({len(exc.problems)} problem(s))") from None
    for index, record in enumerate(records):
        if args.dry_run:
            sys.stdout.write(("---\n" if index else "") + record.yaml)
            continue
        write_atomic(record.path, record.yaml)
        todo = f"; fill in {', '.join(record.todo)} (marked TODO)" if record.todo else ""
        print(f"wrote {record.path}{todo}", file=sys.stderr)


def register(subparsers) -> None:
    imports = group(subparsers, "import", "make records from citations")
    p = command(
        imports,
        "bibtex",
        run,
        "turn BibTeX entries (Google Scholar, DBLP, arXiv) into papers/<id>.yaml",
    )
    p.add_argument("file", metavar="FILE", help="a .bib file, or - for stdin")
    add_curation_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the YAML, write nothing")
