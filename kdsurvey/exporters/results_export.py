"""``kdsurvey export results``: one row per reported result, as JSON or CSV.

Columns: paper, method, role, baseline, benchmark, teacher, student, metric, split, value, source,
note. Architecture names are canonical; ``split`` is the result's split (its benchmark's standard
one when the record names none); ``value`` is a number (JSON) or the number as printed (CSV).
JSON also gives ``value_text``, the number as printed: a JSON number cannot keep the last zero of
``73.30``, and the precision a paper reports is data too.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from kdsurvey.records.catalogue import Catalogue

HELP = "the results the records report, one row per number (JSON or CSV)"
COLUMNS = (
    "paper",
    "method",
    "role",
    "baseline",
    "benchmark",
    "teacher",
    "student",
    "metric",
    "split",
    "value",
    "source",
    "note",
)


def rows(
    catalogue: Catalogue, benchmark: str | None = None, paper: str | None = None
) -> list[dict]:
    """The selected results, in catalogue order (paper id, then as the record lists them)."""
    if benchmark is not None and benchmark not in catalogue.benchmarks.benchmarks:
        known = ", ".join(catalogue.benchmarks.benchmarks)
        raise KeyError(f"unknown benchmark {benchmark!r} (known: {known})")
    if paper is not None and paper not in {p.id for p in catalogue.papers}:
        raise KeyError(f"no record {paper!r}")
    out = []
    for p in catalogue.papers:
        if paper is not None and p.id != paper:
            continue
        for r in p.results:
            if benchmark is not None and r.benchmark != benchmark:
                continue
            out.append(
                {
                    "paper": p.id,
                    "method": r.method,
                    "role": r.role.value,
                    "baseline": r.baseline,
                    "benchmark": r.benchmark,
                    "teacher": r.teacher,
                    "student": r.student,
                    "metric": r.metric,
                    "split": catalogue.benchmarks.split_of(r),
                    "value": r.number,
                    "value_text": r.value,
                    "source": r.source,
                    "note": r.note,
                }
            )
    return out


def as_json(selected: list[dict]) -> str:
    def number(value):
        if isinstance(value, Decimal):
            return (
                int(value)
                if value == value.to_integral_value() and "." not in str(value)
                else float(value)
            )
        raise TypeError(type(value))

    return json.dumps(selected, indent=2, ensure_ascii=False, default=number) + "\n"


def as_csv(selected: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in selected:
        writer.writerow({k: "" if row[k] is None else str(row[k]) for k in COLUMNS})
    return buffer.getvalue()


def add_arguments(parser) -> None:
    parser.add_argument(
        "--format", choices=["json", "csv"], default="json", help="output format (default: json)"
    )
    parser.add_argument("--benchmark", metavar="B", help="only this benchmark (e.g. cifar100)")
    parser.add_argument("--paper", metavar="ID", help="only this record")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
