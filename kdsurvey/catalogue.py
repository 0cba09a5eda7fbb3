"""Load and validate the catalogue: every record of ``papers/``, the venues and the categories.

All problems of all files are collected before anything is reported, each located as
``papers/<file>.yaml:<line>: <field>: <message>``, so a contributor fixes everything in one pass.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from kdsurvey.losses.registry import declared_names
from kdsurvey.schema import Category, CategoryInfo, Paper, Venue, ascii_fold, citation_key
from kdsurvey.yamlsource import FastLoader, YamlProblem, line_of, parse

VENUES_FILE = "venues.yaml"
CATEGORIES_FILE = "categories.yaml"
DATA_FILES = {VENUES_FILE, CATEGORIES_FILE}


@dataclass(frozen=True, order=True)
class Problem:
    """One validation error, located in a file."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"

    def as_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "field": self.field, "message": self.message}


class CatalogueError(Exception):
    """Raised by :func:`load` with every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} error(s)")
        self.problems = sorted(problems)


@dataclass
class Catalogue:
    """The validated catalogue. ``papers`` are sorted by id; ``lines`` maps id -> source line map."""

    root: Path
    papers: list[Paper]
    venues: dict[str, Venue]
    categories: dict[str, CategoryInfo]
    lines: dict[str, dict] = field(default_factory=dict, repr=False)

    def path_of(self, paper: Paper) -> Path:
        return self.root / f"{paper.id}.yaml"

    def line_of(self, paper: Paper, *path) -> int:
        """Line of a field of a record (``catalogue.line_of(p, "links", "code")``)."""
        return line_of(self.lines.get(paper.id), path)

    def in_category(self, category: str) -> list[Paper]:
        return [p for p in self.papers if p.category.value == category]


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (as errors should read)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


def normalise_title(title: str) -> str:
    """Lowercase ASCII letters and digits only: how duplicate titles are recognised."""
    return re.sub(r"[^a-z0-9]", "", ascii_fold(title).lower())


def _read(path: Path, problems: list[Problem], loader: type):
    shown = display_path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(shown, line, "file", f"not UTF-8 (byte {raw[exc.start]:#04x})"))
        return None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        problems.append(Problem(shown, 1, "file", "is empty"))
        return None
    try:
        data = parse(text, loader)
    except YamlProblem as exc:
        problems.append(Problem(shown, exc.line, "file", exc.message))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(shown, 1, "file", "must be a mapping of field: value"))
        return None
    return data


def _field_name(loc: tuple) -> str:
    name = ""
    for step in loc:
        name += f"[{step}]" if isinstance(step, int) else (f".{step}" if name else str(step))
    return name or "record"


def _model(model: type[BaseModel], data: dict, shown: str, problems: list[Problem], prefix=()):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            # Drop pydantic's type tags (``function-after[...]``) from the path; keep keys and indices.
            loc = tuple(s for s in err["loc"] if isinstance(s, int) or "[" not in s)
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(shown, line_of(data, loc), _field_name(prefix + loc), message))
        return None


def _table(path: Path, model: type[BaseModel], problems: list[Problem]) -> dict:
    """Load a ``key: {fields}`` data file (venues, categories)."""
    shown = display_path(path)
    if not path.exists():
        problems.append(Problem(shown, 1, "file", "is missing"))
        return {}
    data = _read(path, problems, FastLoader) or {}
    table = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            problems.append(Problem(shown, line_of(data, (key,)), key, "must be a mapping"))
            continue
        item = _model(model, value, shown, problems, prefix=(key,))
        if item is not None:
            table[key] = item
    return table


def record_paths(root: Path) -> list[Path]:
    """The record files of a catalogue folder, sorted."""
    return sorted(p for p in root.glob("*.yaml") if p.name not in DATA_FILES)


def load(root: Path | str = "papers", loader: type = FastLoader, check_losses: bool = True):
    """Load and validate a catalogue folder; :class:`CatalogueError` lists every problem."""
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        raise CatalogueError([Problem(display_path(root), 1, "folder", "does not exist")])
    venues = _table(root / VENUES_FILE, Venue, problems)
    categories = _table(root / CATEGORIES_FILE, CategoryInfo, problems)
    if categories and set(categories) != {c.value for c in Category}:
        want = ", ".join(c.value for c in Category)
        problems.append(
            Problem(
                display_path(root / CATEGORIES_FILE),
                1,
                "file",
                f"must describe exactly the categories {want}",
            )
        )
    losses = declared_names() if check_losses else None
    papers, lines = [], {}
    seen: dict[tuple[str, str], str] = {}  # (kind, normalised value) -> first file
    for path in record_paths(root):
        shown = display_path(path)
        data = _read(path, problems, loader)
        if data is None:
            continue
        problems.extend(_record_rules(data, path, shown, venues, categories, losses, seen))
        paper = _model(Paper, data, shown, problems)
        if paper is not None:
            papers.append(paper)
            lines[paper.id] = data
    if problems:
        raise CatalogueError(problems)
    papers.sort(key=lambda p: p.id)
    return Catalogue(root, papers, venues, categories, lines)


def _record_rules(data, path, shown, venues, categories, losses, seen):
    """Rules beyond the schema: file name, key rule, references to tables, duplicates.

    They read the raw data, so they report even for a record that also fails the schema.
    """

    def at(*loc):
        return line_of(data, loc)

    def text(*loc):
        value = data
        for step in loc:
            value = value.get(step) if isinstance(value, dict) else None
        return value if isinstance(value, str) else None

    record_id, authors = text("id"), data.get("authors")
    if record_id is not None and record_id != path.stem:
        yield Problem(shown, at("id"), "id", f"must equal the file name {path.stem!r}")
    if (
        record_id is not None
        and text("title")
        and isinstance(data.get("year"), int)
        and isinstance(authors, list)
        and authors
        and isinstance(authors[0], str)
    ):
        key = citation_key(authors[0], data["year"], text("title"))
        if not re.fullmatch(re.escape(key) + "[a-z]?", record_id):
            yield Problem(
                shown,
                at("id"),
                "id",
                f"must be {key!r} (first author's family name + year + first title word; "
                "a letter suffix only to break a collision)",
            )
    venue = text("venue")
    if venues and venue is not None and venue not in venues:
        yield Problem(shown, at("venue"), "venue", f"unknown venue {venue!r} (see venues.yaml)")
    names = data.get("loss")
    for index, name in enumerate(names if isinstance(names, list) else [names]):
        if losses is not None and isinstance(name, str) and name not in losses:
            loc = ("loss", index) if isinstance(names, list) else ("loss",)
            yield Problem(shown, at(*loc), _field_name(loc), f"no loss {name!r} in kdsurvey.losses")
    identities = [
        ("title", normalise_title(text("title") or ""), ("title",)),
        ("arXiv id", text("links", "arxiv"), ("links", "arxiv")),
        ("DOI", (text("links", "doi") or "").lower(), ("links", "doi")),
    ]
    for kind, value, loc in identities:
        if not value:
            continue
        first = seen.setdefault((kind, value), shown)
        if first != shown:
            yield Problem(shown, at(*loc), _field_name(loc), f"same {kind} as {first}")
