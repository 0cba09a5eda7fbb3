"""``kdsurvey readme``: render README.md from the records (``--check``: fail when it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from kdsurvey.commands.common import Failure, command, load_catalogue
from kdsurvey.files import write_atomic


def run(args) -> None:
    from kdsurvey.exporters.readme import diff, render

    wanted = render(load_catalogue(args))
    target = Path(args.output)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != wanted:
            sys.stdout.write(diff(current, wanted, str(target)))
            raise Failure(f"{target} is stale: run `kdsurvey readme` and commit it")
        return
    write_atomic(target, wanted)


def register(subparsers) -> None:
    p = command(subparsers, "readme", run, "render README.md from the records")
    p.add_argument("--check", action="store_true", help="exit 1 with a diff if the file is stale")
    p.add_argument(
        "-o",
        "--output",
        default="README.md",
        metavar="FILE",
        help="file to write (default: README.md)",
    )
