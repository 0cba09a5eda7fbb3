"""Writing a paper record (``papers/<id>.yaml``) the way the hand-written ones look.

:func:`record_yaml` is shared by every command that creates records (``kdsurvey import bibtex``,
``kdsurvey new``). Fields come out in one fixed order, lists and mappings in the same styles as the
existing records, long text folded at 100 columns, and scalars quoted only where YAML needs it.

A required field whose value is ``None`` (or an empty list) is written as ``null`` with a ``TODO``
comment saying what belongs there: the record then fails ``kdsurvey validate`` at that line until
the contributor fills it in. Nothing is ever made up to satisfy the schema.
"""

from __future__ import annotations

import json
import textwrap
from enum import Enum

import yaml

from kdsurvey.records.model import Links, Paper

HEADER = "# yaml-language-server: $schema=schema.json"
WIDTH = 100

#: Top-level and ``links`` fields, in the order records write them (the schema's order).
FIELDS = tuple(Paper.model_fields)
LINK_FIELDS = tuple(Links.model_fields)
REQUIRED = tuple(name for name, info in Paper.model_fields.items() if info.is_required())

#: What belongs in a required field that has no value yet (written as a ``TODO`` comment).
TODO = {
    "id": "the citation key, equal to the file name",
    "title": "the title as published",
    "authors": "every author, in order, as 'Family, Given'",
    "year": "year of the cited version",
    "venue": "a key of papers/venues.yaml",
    "category": "one of logit, feature, similarity",
    "tasks": "a list such as [classification, detection] (keys of papers/tasks.yaml)",
    "loss": "registry name(s) in kdsurvey.losses, main one first (kdsurvey losses list)",
    "summary": "one plain sentence: what is distilled and how",
    "paper": "the page a reader should open first",
}

#: Identifier-like strings that records always quote (they often look like numbers).
QUOTED = ("arxiv", "volume", "number", "pages")

# Keep YAML's own choice of which strings need quotes, but never break lines.
_DUMP = {"allow_unicode": True, "width": float("inf"), "default_flow_style": True}


def _missing(value) -> bool:
    """No value: ``None``, an empty list, string or mapping (an empty ``unconfirmed: {}`` is left
    out, as hand-written records leave it out)."""
    return value is None or value == [] or value == "" or value == {}


def _no_author(fields: dict) -> bool:
    """An empty author list that ``unconfirmed.authors`` explains: written ``authors: []``, not a
    ``TODO`` (the record is valid as it is)."""
    return fields.get("authors") == [] and "authors" in (fields.get("unconfirmed") or {})


def _scalar(value) -> str:
    """One YAML scalar: plain where YAML reads it back unchanged, else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    value = str(value.value if isinstance(value, Enum) else value)
    dumped = yaml.safe_dump(value, **_DUMP)
    dumped = dumped.removesuffix("\n...\n").rstrip("\n")
    if dumped == value and "\n" not in dumped:
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _todo(key: str) -> str:
    return f"{key}: null  # TODO: {TODO.get(key, 'fill in')}"


def _text(key: str, value: str, indent: str = "", fold: bool = False) -> list[str]:
    """``key: value`` on one line when it fits, else a ``>-`` block folded at :data:`WIDTH`."""
    line = f"{indent}{key}: {_scalar(value)}"
    foldable = value == value.strip() and "\n" not in value and "  " not in value and value
    if foldable and (fold or len(line) > WIDTH):
        body = textwrap.wrap(
            value, WIDTH - len(indent) - 2, break_long_words=False, break_on_hyphens=False
        )
        return [f"{indent}{key}: >-", *(f"{indent}  {part}" for part in body)]
    return [line]


def _flow(values) -> str:
    items = [v.value if isinstance(v, Enum) else v for v in values]
    return yaml.safe_dump(items, **_DUMP).strip()


def record_yaml(fields: dict) -> str:
    """The text of ``papers/<id>.yaml`` for ``fields``, keyed as :class:`~kdsurvey.schema.Paper`.

    ``fields["links"]`` is a mapping with the keys of :class:`~kdsurvey.schema.Links`. Optional
    fields that are ``None`` are left out; required ones are written as ``null  # TODO: ...``.
    ``loss`` may be a string or a list. Unknown keys raise ``ValueError``. The result is
    deterministic and always parses back to the values given.
    """
    unknown = set(fields) - set(FIELDS)
    links = fields.get("links") or {}
    unknown |= {f"links.{k}" for k in set(links) - set(LINK_FIELDS)}
    if unknown:
        raise ValueError(f"unknown record field(s): {', '.join(sorted(unknown))}")

    out = [HEADER]
    for key in FIELDS:
        value = fields.get(key)
        if key == "links":
            out.append("links:")
            for name in LINK_FIELDS:
                item = links.get(name)
                if _missing(item):
                    if name == "paper":
                        out.append("  " + _todo("paper"))
                    continue
                shown = json.dumps(item) if name in QUOTED else _scalar(item)
                out.append(f"  {name}: {shown}")
            continue
        if key == "authors" and _no_author(fields):
            out.append("authors: []")
            continue
        if _missing(value):
            if key in REQUIRED:
                out.append(_todo(key))
            continue
        if key == "unconfirmed":
            out.append("unconfirmed:")
            for name, sentence in value.items():
                out.extend(_text(str(name), str(sentence), indent="  "))
        elif key == "authors":
            out.append("authors:")
            out.extend(f"  - {_scalar(name)}" for name in value)
        elif key == "tasks":
            out.append(f"tasks: {_flow(value)}")
        elif key == "loss":
            names = [value] if isinstance(value, str) else list(value)
            out.append(f"loss: {_scalar(names[0]) if len(names) == 1 else _flow(names)}")
        elif key == "results":
            out.append("results:")
            for result in value:
                shown = [(k, v) for k, v in result.items() if not _missing(v)]
                for index, (k, v) in enumerate(shown):
                    text = json.dumps(str(v)) if k == "value" else _scalar(_plain(v))
                    out.append(("  - " if index == 0 else "    ") + f"{k}: {text}")
        elif key in ("summary", "notes"):
            out.extend(_text(key, str(value), fold=key == "summary"))
        elif key in QUOTED:
            out.append(f"{key}: {json.dumps(str(value), ensure_ascii=False)}")
        else:
            out.append(f"{key}: {_scalar(value)}")
    text = "\n".join(out) + "\n"
    _check_round_trip(text, fields)
    return text


def todo_fields(fields: dict) -> list[str]:
    """The required fields :func:`record_yaml` writes as ``null  # TODO`` for ``fields``: what the
    contributor still has to fill in (``links.paper`` for the paper link), in the record's order."""
    todo = [
        key
        for key in REQUIRED
        if key != "links"
        and _missing(fields.get(key))
        and not (key == "authors" and _no_author(fields))
    ]
    if _missing((fields.get("links") or {}).get("paper")):
        todo.append("links.paper")
    return todo


def _check_round_trip(text: str, fields: dict) -> None:
    """Refuse to return text that would not read back as ``fields`` (a bug, never user error)."""
    data = yaml.safe_load(text)
    for key in FIELDS:
        want = fields.get(key)
        if key == "links":
            got_links = data.get("links") or {}
            for name in LINK_FIELDS:
                item = (fields.get("links") or {}).get(name)
                if not _missing(item) and got_links.get(name) != _plain(item):
                    raise AssertionError(f"links.{name} does not read back: {item!r}")
            continue
        if key == "authors" and _no_author(fields):
            if data.get(key) != []:
                raise AssertionError(f"authors does not read back: [] -> {data.get(key)!r}")
            continue
        if _missing(want):
            continue
        if key == "loss" and isinstance(want, str):
            want = [want]
        got = data.get(key)
        if key == "loss" and isinstance(got, str):
            got = [got]
        if got != _plain(want):
            raise AssertionError(f"{key} does not read back: {want!r} -> {got!r}")


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not _missing(v)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int)):
        return value
    return str(value.value if isinstance(value, Enum) else value)


def add_curation_options(parser) -> None:
    """``--category``, ``--task``, ``--loss``, ``--summary``: the fields of a record that no API
    or BibTeX entry can give (``kdsurvey new`` and ``kdsurvey import bibtex``)."""
    from kdsurvey.records.model import Category

    parser.add_argument("--category", choices=[c.value for c in Category], help="the category")
    parser.add_argument(
        "--task",
        action="append",
        metavar="TASK",
        help="a task the paper evaluates on, a key of papers/tasks.yaml (repeat for several)",
    )
    parser.add_argument(
        "--loss",
        action="append",
        metavar="NAME",
        help="a loss registry name, main one first (repeat for several)",
    )
    parser.add_argument("--summary", help="one plain sentence: what is distilled and how")


def add_record_options(parser) -> None:
    """``--venue``, ``--paper``, ``--code``, ``--official``/``--unofficial``: fields a contributor
    often knows better than the API or the BibTeX entry (``kdsurvey new`` and ``kdsurvey import
    bibtex``; they win over what was fetched or read)."""
    parser.add_argument("--venue", metavar="KEY", help="a key of papers/venues.yaml")
    parser.add_argument("--paper", metavar="URL", help="the page a reader should open first")
    parser.add_argument("--code", metavar="URL", help="https://github.com/<owner>/<repo>")
    official = parser.add_mutually_exclusive_group()
    official.add_argument(
        "--official",
        dest="code_official",
        action="store_true",
        default=None,
        help="the code is the authors' own",
    )
    official.add_argument(
        "--unofficial",
        dest="code_official",
        action="store_false",
        help="the code is someone else's",
    )
