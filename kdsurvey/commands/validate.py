"""``kdsurvey validate``: the schema and the catalogue rules, every problem at once."""

from __future__ import annotations

import json

from kdsurvey import problems
from kdsurvey.commands.common import FORMAT, PAPERS, check_data_files, command, load_catalogue


def run(args) -> None:
    from kdsurvey.exporters.view import View

    catalogue = load_catalogue(args)
    papers, categories = len(catalogue.papers), len(catalogue.categories)
    check_data_files(args, View(catalogue))
    if args.format == "json":
        print(json.dumps(problems.as_json([], papers=papers, categories=categories)))
    else:
        print(f"{papers} papers, {categories} categories, 0 errors")


def register(subparsers) -> None:
    command(subparsers, "validate", run, "validate every record", (PAPERS, FORMAT))
