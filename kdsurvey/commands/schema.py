"""``kdsurvey schema``: the JSON Schema of a paper record (papers/schema.json is its output)."""

from __future__ import annotations

import json
import sys

from kdsurvey.commands.common import command
from kdsurvey.files import write_atomic
from kdsurvey.records.model import Paper


def run(args) -> None:
    text = json.dumps(Paper.model_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def register(subparsers) -> None:
    p = command(subparsers, "schema", run, "print the JSON Schema of a paper record", ())
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
