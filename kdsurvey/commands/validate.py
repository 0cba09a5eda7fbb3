"""``kdsurvey validate``: the schema and the catalogue rules, every problem at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kdsurvey import problems
from kdsurvey.commands.common import FORMAT, PAPERS, Failure, command, load_catalogue
from kdsurvey.records import libraries, survey


def _check_data(args, catalogue) -> None:
    """The data files beside the records that name records or losses, when they exist:
    ``libraries.yaml`` (known losses, no name twice) and ``survey.yaml`` (every id a record)."""
    papers, categories = len(catalogue.papers), len(catalogue.categories)
    found = []
    path = Path(args.papers) / libraries.LIBRARIES_FILE
    if path.is_file():
        try:
            libraries.load(path)
        except libraries.LibrariesError as exc:
            found += exc.problems
    path = Path(args.papers) / survey.SURVEY_FILE
    if path.is_file():
        try:
            survey.load(path, (p.id for p in catalogue.papers))
        except survey.SurveyError as exc:
            found += exc.problems
    if found:
        if args.format == "json":
            shape = problems.as_json(found, papers=papers, categories=categories)
            print(json.dumps(shape, indent=2))
            raise Failure("", 1)
        sys.stderr.write(problems.text(found))
        raise Failure(f"{len(found)} error(s)")


def run(args) -> None:
    catalogue = load_catalogue(args)
    papers, categories = len(catalogue.papers), len(catalogue.categories)
    _check_data(args, catalogue)
    if args.format == "json":
        print(json.dumps(problems.as_json([], papers=papers, categories=categories)))
    else:
        print(f"{papers} papers, {categories} categories, 0 errors")


def register(subparsers) -> None:
    command(subparsers, "validate", run, "validate every record", (PAPERS, FORMAT))
