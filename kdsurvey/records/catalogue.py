"""Load and validate the catalogue: every record of ``papers/``, the venues and the categories.

All problems of all files are collected before anything is reported, each located as
``papers/<file>.yaml:<line>: <field>: <message>``, so a contributor fixes everything in one pass.
"""

from __future__ import annotations

import difflib
import gc
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import yaml

from kdsurvey.problems import Problem, field_name
from kdsurvey.records.model import (
    Category,
    CategoryInfo,
    Paper,
    TaskInfo,
    Venue,
    ascii_fold,
    citation_key,
)
from kdsurvey.records.reading import (
    CATEGORIES_FILE,
    DATA_FILES,
    DOI_PREFIXES_FILE,
    ROBOT_HOSTS_FILE,
    TASKS_FILE,
    VENUES_FILE,
    display_path,
    parse_text,
    read_doi_prefixes,
    read_hosts,
    read_mapping,
    read_table,
    validate_model,
)
from kdsurvey.records.results import Vocabulary, load_vocabulary, result_problems
from kdsurvey.records.yamlsource import FastLoader, line_of, parse

# Catalogues this large are parsed in parallel; below it, starting processes costs more than it saves.
PARALLEL_FROM = 2000
CHUNK = 500
_COLLISION_SUFFIXES = frozenset(["", *"abcdefghijklmnopqrstuvwxyz"])


@dataclass(frozen=True)
class Known:
    """What a record's fields may name, read from the data files beside the records: the rules
    beyond the schema check against it. A None part is not checked (a new record is checked
    without a results vocabulary: its results are checked when the catalogue loads)."""

    venues: dict | None = None
    tasks: dict | None = None
    losses: frozenset[str] | None = None
    results: Vocabulary | None = None


def loss_names() -> frozenset[str]:
    """The loss names a record's ``loss:`` may use: the one place the catalogue asks
    :mod:`kdsurvey.losses`, through its torch-free manifest."""
    from kdsurvey.losses.manifest import names

    return frozenset(names())


class CatalogueError(Exception):
    """Raised by :func:`load` with every problem found."""

    def __init__(self, problems: list[Problem], records: int = 0, categories: int = 0):
        super().__init__(f"{len(problems)} error(s)")
        self.problems = sorted(problems)
        # what was read, so that a report counts it as a successful load's would
        self.records, self.categories = records, categories


@dataclass
class Catalogue:
    """The validated catalogue; ``papers`` are sorted by id."""

    root: Path
    papers: list[Paper]
    venues: dict[str, Venue]
    categories: dict[str, CategoryInfo]
    tasks: dict[str, TaskInfo] = field(default_factory=dict)
    doi_prefixes: dict[str, str] = field(default_factory=dict)  # publisher -> "10.NNNN"
    robot_hosts: list[str] = field(default_factory=list)  # hosts that refuse link checkers
    _sources: dict[str, dict] = field(default_factory=dict, repr=False)
    benchmarks: Vocabulary = field(default_factory=Vocabulary, repr=False)

    def path_of(self, paper: Paper) -> Path:
        return self.root / f"{paper.id}.yaml"

    def source(self, paper: Paper) -> dict:
        """The record's data as written (a ``LineDict``), read again on first use: loading keeps
        no line numbers for valid records, since only reports about a field need them."""
        if paper.id not in self._sources:
            text = self.path_of(paper).read_text(encoding="utf-8")
            self._sources[paper.id] = parse(text)
        return self._sources[paper.id]

    def line_of(self, paper: Paper, *path) -> int:
        """Line of a field of a record (``catalogue.line_of(p, "links", "code")``)."""
        return line_of(self.source(paper), path)

    def in_category(self, category: str) -> list[Paper]:
        return [p for p in self.papers if p.category.value == category]


def normalise_title(title: str) -> str:
    """Lowercase ASCII letters and digits only: how duplicate titles are recognised."""
    return re.sub(r"[^a-z0-9]", "", ascii_fold(title).lower())


def identity_keys(title, arxiv, doi):
    """The (kind, value) pairs that make two records the same paper: normalised title, arXiv id,
    DOI (case-insensitive). Values that are missing or not strings are skipped."""
    title = normalise_title(title) if isinstance(title, str) else ""
    if title:
        yield "title", title
    if isinstance(arxiv, str) and arxiv:
        yield "arXiv id", arxiv
    if isinstance(doi, str) and doi:
        yield "DOI", doi.lower()


def identities(root: Path) -> dict[tuple[str, str], str]:
    """(kind, value) -> record file, over the records of ``root`` read leniently (a record that
    does not validate still counts), so that adding a paper twice is caught early."""
    seen = {}
    for path in record_paths(root):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        links = data.get("links") if isinstance(data.get("links"), dict) else {}
        for key in identity_keys(data.get("title"), links.get("arxiv"), links.get("doi")):
            seen.setdefault(key, display_path(path))
    return seen


def same_paper(seen: dict, title, arxiv, doi) -> tuple[str, str] | None:
    """``(record file, kind)`` of the record in ``seen`` (:func:`identities`) that is the same paper
    as this title, arXiv id or DOI (the first kind that matches, arXiv id and DOI before the
    title), or ``None``."""
    keys = sorted(identity_keys(title, arxiv, doi), key=lambda key: key[0] == "title")
    return next(((seen[key], key[0]) for key in keys if key in seen), None)


def already_message(found: tuple[str, str]) -> str:
    """What ``new`` and ``import bibtex`` say of a paper :func:`same_paper` found."""
    path, kind = found
    return f"already in the catalogue as {path} (same {kind})"


def record_paths(root: Path) -> list[Path]:
    """The record files of a catalogue folder, sorted."""
    names = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.name.endswith(".yaml") and entry.name not in DATA_FILES and entry.is_file()
    )
    return [root / name for name in names]


def unread_paths(root: Path) -> list[Path]:
    """Files of a catalogue folder that look like records but are not read (``x.yml``,
    ``x.YAML``): only ``*.yaml`` files are records, so these would be silently left out."""
    return sorted(
        root / entry.name
        for entry in os.scandir(root)
        if entry.name.lower().endswith((".yml", ".yaml"))
        and not entry.name.endswith(".yaml")
        and entry.is_file()
    )


def load(root: Path | str = "papers", loader: type = FastLoader, check_losses: bool = True):
    """Load and validate a catalogue folder; :class:`CatalogueError` lists every problem."""
    # Loading creates many objects and frees few: the cyclic garbage collector would rescan the
    # growing heap again and again for nothing (a third of the time for 10,000 records).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(Path(root), loader, check_losses)
    finally:
        if collecting:
            gc.enable()


def _load(root: Path, loader: type, check_losses: bool) -> Catalogue:
    problems: list[Problem] = []
    if not root.is_dir():
        raise CatalogueError([Problem(display_path(root), 1, "folder", "does not exist")])
    venues = read_table(root / VENUES_FILE, Venue, problems)
    categories = read_table(root / CATEGORIES_FILE, CategoryInfo, problems)
    tasks = read_table(root / TASKS_FILE, TaskInfo, problems)
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
    doi_prefixes = read_doi_prefixes(root / DOI_PREFIXES_FILE, problems)
    robot_hosts = read_hosts(root / ROBOT_HOSTS_FILE, problems)
    for path in unread_paths(root):
        problems.append(
            Problem(display_path(path), 1, "file", "not read: records must end in .yaml")
        )
    vocabulary = load_vocabulary(root, problems)
    known = Known(venues, tasks, loss_names() if check_losses else None, vocabulary)
    papers = []
    seen: dict[tuple[str, str], str] = {}  # (kind, normalised value) -> first file
    paths = record_paths(root)
    parsed = _parsed(paths, display_path(root), loader, known)
    for path, shown, data, found in parsed:
        paper = None
        if data is not None:
            found.extend(_duplicates(data, shown, seen))
            paper = validate_model(Paper, data, shown, found)
        if found:  # valid records need no line numbers; read this one again to locate its problems
            paper, found = _check_record(path, shown, known, seen, loader)
            problems.extend(found)
        if paper is not None:
            if paper.results:  # canonical architecture names
                results = [vocabulary.normalised(r) for r in paper.results]
                paper = paper.model_copy(update={"results": results})
            papers.append(paper)
    if problems:
        raise CatalogueError(problems, len(paths), len(categories))
    papers.sort(key=lambda p: p.id)
    return Catalogue(
        root, papers, venues, categories, tasks, doi_prefixes, robot_hosts, benchmarks=vocabulary
    )


def _parse_chunk(paths: list[Path], shown_root: str, loader: type, known: Known) -> list:
    """``(path, shown, plain data or None, problems)`` for each file: the part of loading that
    needs no other record, so it can run in another process."""
    out = []
    for path in paths:
        shown = os.path.join(shown_root, path.name)
        found: list[Problem] = []
        data = read_mapping(path, shown, found, loader, located=False)
        if data is not None:
            found.extend(_record_rules(data, path, shown, known))
        out.append((path, shown, data, found))
    return out


def _parsed(paths: list[Path], shown_root: str, loader: type, known: Known):
    """:func:`_parse_chunk` over all ``paths``, in order; large catalogues are parsed by a
    process per core while this process validates the chunks already parsed."""
    workers = min(os.cpu_count() or 1, 4)
    forking = "fork" in multiprocessing.get_all_start_methods()  # not on Windows
    if len(paths) < PARALLEL_FROM or workers < 2 or not forking:
        yield from _parse_chunk(paths, shown_root, loader, known)
        return
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    context = multiprocessing.get_context("fork")  # no re-import: workers start in milliseconds
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        more = (repeat(shown_root), repeat(loader), repeat(known))
        for chunk in pool.map(_parse_chunk, chunks, *more):
            yield from chunk


def _check_record(path, shown, known: Known, seen, loader):
    """Read (with line numbers) and validate one record: ``(Paper or None, problems)``."""
    found: list[Problem] = []
    data = read_mapping(path, shown, found, loader)
    if data is None:
        return None, found
    found.extend(_record_rules(data, path, shown, known))
    found.extend(_duplicates(data, shown, seen))
    return validate_model(Paper, data, shown, found), found


def validate_record(
    text: str, path: Path, venues: dict, losses=None, tasks: dict | None = None
) -> list[Problem]:
    """The problems ``kdsurvey validate`` would find in one record whose text is ``text`` and
    whose file is (or will be) ``path``: for commands that make a record (``new``, ``import``)
    and check it before, or without, writing it. Rules that compare records (duplicates) are
    left to the commands, which refuse a paper already catalogued before they get here.
    ``losses``/``tasks``: the known loss names and tasks, None to leave them unchecked."""
    shown = display_path(path)
    found: list[Problem] = []
    data = parse_text(text, shown, found)
    if data is not None:
        found.extend(_record_rules(data, path, shown, Known(venues, tasks, losses)))
        validate_model(Paper, data, shown, found)
    return sorted(found)


def _text(data, *loc) -> str | None:
    """The string at ``loc`` in raw record data, or None (missing, or not a string)."""
    for step in loc:
        data = data.get(step) if isinstance(data, dict) else None
    return data if isinstance(data, str) else None


def _record_rules(data, path, shown, known: Known):
    """Rules beyond the schema that need no other record: file name, key rule, venue, tasks,
    losses, results.

    They read the raw data, so they report even for a record that also fails the schema.
    """

    def at(*loc):
        return line_of(data, loc)

    venues, losses = known.venues, known.losses
    for loc, message in result_problems(data, shown, known.results) if known.results else ():
        yield Problem(shown, at(*loc), field_name(loc), message)

    record_id, title, authors = _text(data, "id"), _text(data, "title"), data.get("authors")
    if record_id is not None and record_id != path.stem:
        yield Problem(shown, at("id"), "id", f"must equal the file name {path.stem!r}")
    if (
        record_id is not None
        and title
        and isinstance(data.get("year"), int)
        and isinstance(authors, list)
        and (not authors or isinstance(authors[0], str))
    ):
        key = citation_key(authors[0] if authors else None, data["year"], title)
        suffix = record_id[len(key) :]
        if not record_id.startswith(key) or suffix not in _COLLISION_SUFFIXES:
            yield Problem(
                shown,
                at("id"),
                "id",
                f"must be {key!r} (first author's family name, or 'unknown' with no author, + year "
                "+ first title word; a letter suffix only to break a collision)",
            )
    venue = _text(data, "venue")
    if venues and venue is not None and venue not in venues:
        yield Problem(shown, at("venue"), "venue", unknown_venue(venue, venues))
    tasks = data.get("tasks")
    for index, task in enumerate(tasks if isinstance(tasks, list) else []):
        if known.tasks and isinstance(task, str) and task not in known.tasks:
            yield Problem(
                shown,
                at("tasks", index),
                f"tasks[{index}]",
                f"unknown task {task!r}: one of {', '.join(known.tasks)} (see tasks.yaml)",
            )
    names = data.get("loss")
    for index, name in enumerate(names if isinstance(names, list) else [names]):
        if losses is not None and isinstance(name, str) and name not in losses:
            loc = ("loss", index) if isinstance(names, list) else ("loss",)
            yield Problem(shown, at(*loc), field_name(loc), unknown_loss(name, losses))


def unknown_venue(venue: str, venues: dict) -> str:
    """The message for a ``venue`` that is no key of venues.yaml, with the key it may mean: the
    one whose key, short name or alias it spells (``CVPR``, ``NeurIPS``), or a close key."""
    spelled = {}
    for key, info in venues.items():
        for name in (key, info.short, info.name, *info.aliases):
            spelled.setdefault(name.casefold(), key)
    key = spelled.get(venue.casefold())
    close = [key] if key else difflib.get_close_matches(venue, sorted(venues), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown venue {venue!r}{hint} (venues are the keys of venues.yaml)"


def unknown_loss(name: str, losses) -> str:
    """The message for a ``loss`` that is not in the manifest: what to do next."""
    close = [n for n in sorted(losses) if n.casefold() == name.casefold()]
    close = close or difflib.get_close_matches(name, sorted(losses), n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return (
        f"no loss {name!r} in kdsurvey.losses: {hint}`kdsurvey losses list` shows the losses; "
        'a paper whose loss is not implemented yet needs one (CONTRIBUTING.md, "A new loss": '
        "a module in kdsurvey/losses/ whose docstring cites this record, an evidence level, "
        "then `kdsurvey losses manifest`)"
    )


_IDENTITY_FIELDS = {"title": ("title",), "arXiv id": ("links", "arxiv"), "DOI": ("links", "doi")}


def _duplicates(data, shown, seen):
    """A record with the title, arXiv id or DOI of an earlier one (``seen`` records them)."""
    keys = identity_keys(
        _text(data, "title"), _text(data, "links", "arxiv"), _text(data, "links", "doi")
    )
    for kind, value in keys:
        first = seen.setdefault((kind, value), shown)
        if first != shown:
            loc = _IDENTITY_FIELDS[kind]
            yield Problem(shown, line_of(data, loc), field_name(loc), f"same {kind} as {first}")
