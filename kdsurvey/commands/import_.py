"""``kdsurvey import bibtex FILE``: BibTeX entries -> papers/<id>.yaml (the YAML on stdout with
``--dry-run``). Named ``import_`` because ``import`` is a Python keyword."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kdsurvey.commands.common import (
    Failure,
    check_venue,
    command,
    group,
    read_venues,
    todo_note,
)
from kdsurvey.files import write_atomic
from kdsurvey.records.catalogue import loss_names
from kdsurvey.records.writer import add_curation_options, add_record_options

EPILOG = """\
--venue, --paper, --code and --official/--unofficial are those of `kdsurvey new` and win over
what the entry says (a file of one entry only). An entry that is a paper already in the catalogue
(same arXiv id, DOI or title) is reported as such and nothing is written.

exit codes: 0 every record was written (or, with --dry-run, printed); fields left as TODO do not
fail the command, stderr names them and `kdsurvey validate` fails until they are filled in.
1 an entry cannot be imported (nothing is written); 2 bad usage (a missing file, an unknown
--loss or --venue, a flag for one paper on a file of several entries)."""


def run(args) -> None:
    """BibTeX entries -> papers/<id>.yaml (or the YAML on stdout with --dry-run)."""
    from kdsurvey.importers.bibtex import ImportFailure, Options, import_bibtex

    venues = read_venues(Path(args.papers))
    check_venue(args.venue, venues)
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
        venue=args.venue,
        paper=args.paper,
        code=args.code,
        code_official=args.code_official,
    )
    try:
        records = import_bibtex(text, args.papers, venues, options, source=args.file)
    except ImportFailure as exc:
        if exc.usage:
            raise Failure(str(exc), 2) from None
        raise Failure(str(exc) + f"\nnothing written ({len(exc.problems)} problem(s))") from None
    for index, record in enumerate(records):
        for note in record.notes:
            print(f"{record.fields['id']}: {note}", file=sys.stderr)
        if args.dry_run:
            sys.stdout.write(("---\n" if index else "") + record.yaml)
            note = todo_note(record.todo, None)
        else:
            write_atomic(record.path, record.yaml)
            note = todo_note(record.todo, str(record.path))
        print(f"{record.fields['id']}: {note}" if args.dry_run else note, file=sys.stderr)


def register(subparsers) -> None:
    imports = group(subparsers, "import", "make records from citations")
    p = command(
        imports,
        "bibtex",
        run,
        "turn BibTeX entries (Google Scholar, DBLP, arXiv) into papers/<id>.yaml",
    )
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file", metavar="FILE", help="a .bib file, or - for stdin")
    add_curation_options(p)
    add_record_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the YAML, write nothing")
