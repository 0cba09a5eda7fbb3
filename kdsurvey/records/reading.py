"""Reading the catalogue's YAML files into checked data, every problem located.

Records, the venue and category tables, and the small data files beside them (DOI prefixes of
publishers, hosts that block robots) are all read here, so each reports a mistake the same way:
``papers/<file>.yaml:<line>: <field>: <message>``. Data files that hold curator knowledge are
data, not code: adding a publisher or a host is a one-line change to a YAML file.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from kdsurvey.problems import Problem, field_name
from kdsurvey.records.yamlsource import FastLoader, YamlProblem, line_of, parse

VENUES_FILE = "venues.yaml"
CATEGORIES_FILE = "categories.yaml"
TASKS_FILE = "tasks.yaml"
DOI_PREFIXES_FILE = "doi_prefixes.yaml"
ROBOT_HOSTS_FILE = "robot_hosts.yaml"
LIBRARIES_FILE = "libraries.yaml"  # code libraries -> kdsurvey losses (kdsurvey.records.libraries)
BENCHMARKS_FILE = "benchmarks.yaml"  # read by kdsurvey.records.results
SURVEY_FILE = "survey.yaml"  # the survey's papers (kdsurvey.records.survey)
#: The files of a catalogue folder that are not records.
DATA_FILES = frozenset(
    {
        VENUES_FILE,
        CATEGORIES_FILE,
        TASKS_FILE,
        DOI_PREFIXES_FILE,
        ROBOT_HOSTS_FILE,
        LIBRARIES_FILE,
        BENCHMARKS_FILE,
        SURVEY_FILE,
    }
)

#: The largest file of a catalogue folder that is read: a larger one is refused before it is read
#: or parsed. Most records are 1-5 KB; the largest, with its reported results, about 100 KB.
MAX_RECORD_BYTES = 1024 * 1024

_DOI_PREFIX = re.compile(r"^10\.\d{4,9}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (as errors should read)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_text(path: Path, shown: str, problems: list[Problem]) -> str | None:
    """The file as text, or None with a located problem when it is not UTF-8 or too large."""
    size = path.stat().st_size
    if size > MAX_RECORD_BYTES:
        limit = f"{MAX_RECORD_BYTES / 2**20:g} MB"
        problems.append(
            Problem(shown, 1, "file", f"is {size:,} bytes: a file may be at most {limit}")
        )
        return None
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(shown, line, "file", f"not UTF-8 (byte {raw[exc.start]:#04x})"))
        return None


def parse_text(text: str, shown: str, problems: list[Problem], loader=FastLoader, located=True):
    """The YAML document of ``text`` when it is a non-empty mapping, else None with a problem."""
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        problems.append(Problem(shown, 1, "file", "is empty"))
        return None
    try:
        data = parse(text, loader, located)
    except YamlProblem as exc:
        problems.append(Problem(shown, exc.line, "file", exc.message))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(shown, 1, "file", "must be a mapping of field: value"))
        return None
    return data


def read_mapping(path: Path, shown: str, problems: list[Problem], loader=FastLoader, located=True):
    text = read_text(path, shown, problems)
    return None if text is None else parse_text(text, shown, problems, loader, located)


def validate_model(model: type[BaseModel], data: dict, shown: str, problems: list, prefix=()):
    """``model`` made from ``data``, or None with a located problem for each schema error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            # Drop pydantic's type tags (``function-after[...]``) from the path; keep keys and indices.
            loc = tuple(s for s in err["loc"] if isinstance(s, int) or "[" not in s)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                message = _unknown_field(model, loc)
            problems.append(Problem(shown, line_of(data, loc), field_name(prefix + loc), message))
        return None


def _unknown_field(model: type[BaseModel], loc: tuple) -> str:
    """The message for a key that is no field (``summery:``), with the field it may have meant."""
    known = _fields_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return "unknown field" + (f"; did you mean {close[0]!r}?" if close else "")


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """The field names of the model found at ``path`` inside ``model`` (list indices skipped)."""
    for step in path:
        if isinstance(step, int):
            continue
        field = model.model_fields.get(step)
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _model_in(arg):
            return found
    return None


def read_table(path: Path, model: type[BaseModel], problems: list[Problem]) -> dict:
    """Load a ``key: {fields}`` data file (venues, categories)."""
    shown = display_path(path)
    if not path.exists():
        problems.append(Problem(shown, 1, "file", "is missing"))
        return {}
    data = read_mapping(path, shown, problems) or {}
    table = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            problems.append(Problem(shown, line_of(data, (key,)), key, "must be a mapping"))
            continue
        item = validate_model(model, value, shown, problems, prefix=(key,))
        if item is not None:
            table[key] = item
    return table


def read_doi_prefixes(path: Path, problems: list[Problem]) -> dict[str, str]:
    """``publisher: "10.NNNN"`` from ``doi_prefixes.yaml``; a catalogue without one has none."""
    if not path.exists():
        return {}
    shown = display_path(path)
    data = read_mapping(path, shown, problems) or {}
    prefixes = {}
    for publisher, prefix in data.items():
        if not isinstance(prefix, str) or not _DOI_PREFIX.match(prefix):
            problems.append(
                Problem(
                    shown,
                    line_of(data, (publisher,)),
                    str(publisher),
                    'must be a quoted DOI prefix like "10.1109"',
                )
            )
            continue
        prefixes[str(publisher)] = prefix
    return prefixes


def read_hosts(path: Path, problems: list[Problem]) -> list[str]:
    """The host names listed in ``robot_hosts.yaml`` (a YAML list); none without the file."""
    if not path.exists():
        return []
    shown = display_path(path)
    text = read_text(path, shown, problems)
    if text is None:
        return []
    try:
        data = parse(text)
    except YamlProblem as exc:
        problems.append(Problem(shown, exc.line, "file", exc.message))
        return []
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append(Problem(shown, 1, "file", "must be a list of host names (- host)"))
        return []
    hosts = []
    for index, host in enumerate(data):
        if not isinstance(host, str) or not _HOST.match(host):
            problems.append(
                Problem(
                    shown,
                    line_of(data, (index,)),
                    f"[{index}]",
                    "must be a lowercase host name like ieeexplore.ieee.org",
                )
            )
            continue
        hosts.append(host)
    return hosts
