"""``kdsurvey validate``: the schema and the catalogue rules, every problem at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kdsurvey import problems
from kdsurvey.commands.common import FORMAT, PAPERS, Failure, command, load_catalogue
from kdsurvey.records import libraries


def _check_libraries(args, papers: int, categories: int) -> None:
    """``libraries.yaml`` beside the records, when there is one: known losses, no name twice."""
    path = Path(args.papers) / libraries.LIBRARIES_FILE
    if not path.is_file():
        return
    try:
        libraries.load(path)
    except libraries.LibrariesError as exc:
        if args.format == "json":
            shape = problems.as_json(exc.problems, papers=papers, categories=categories)
            print(json.dumps(shape, indent=2))
            raise Failure("", 1) from None
        sys.stderr.write(problems.text(exc.problems))
        raise Failure(f"{len(exc.problems)} error(s)") from None


def run(args) -> None:
    catalogue = load_catalogue(args)
    papers, categories = len(catalogue.papers), len(catalogue.categories)
    _check_libraries(args, papers, categories)
    if args.format == "json":
        print(json.dumps(problems.as_json([], papers=papers, categories=categories)))
    else:
        print(f"{papers} papers, {categories} categories, 0 errors")


def register(subparsers) -> None:
    command(subparsers, "validate", run, "validate every record", (PAPERS, FORMAT))
