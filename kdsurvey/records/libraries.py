"""Which kdsurvey loss matches each loss the main KD code libraries ship (``papers/libraries.yaml``).

The file is data: for each library (RepDistiller, mdistiller, torchdistill...) its repository, the
commit that was read, and every loss it ships, each with the kdsurvey loss that computes the same
quantity, or none and why. How a match is proven is not in the file: :func:`rows` reads it from the
losses' manifest (the loss's evidence level, the repository whose code produced its reference
cases, and whether the library's own code was among the code run), so the table can never disagree
with the losses. Torch-free: only :mod:`kdsurvey.losses.manifest` is read.

Mistakes are reported like the records': ``papers/libraries.yaml:<line>: <field>: <message>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kdsurvey.problems import Problem
from kdsurvey.records.model import Line
from kdsurvey.records.reading import LIBRARIES_FILE, display_path, read_mapping, validate_model
from kdsurvey.records.yamlsource import line_of

__all__ = ["LIBRARIES_FILE", "Entry", "LibrariesError", "Library", "Row", "check", "load", "rows"]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Line = Field(description="the library's class or function")
    path: Line = Field(description="the file of the repository that defines it")
    loss: Line | None = Field(description="the matching kdsurvey loss, or null when none")
    note: Line | None = None


class _Library(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    losses: list[_Entry] = Field(min_length=1)


@dataclass(frozen=True)
class Entry:
    """One loss a library ships."""

    name: str  # the library's class or function
    path: str  # the file that defines it
    loss: str | None  # the kdsurvey loss that matches it; None when there is none
    note: str  # why there is none, or what to know about the match ("" when nothing)


@dataclass(frozen=True)
class Library:
    """A code library and every loss it ships, in the file's order."""

    name: str
    repo: str  # owner/name on GitHub
    commit: str  # the commit that was read
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Row:
    """One line of the coverage table: a library's loss, its match, and how the match is proven."""

    library: str
    repo: str  # the library's repository
    name: str  # the library's class or function
    path: str
    loss: str | None
    evidence: str | None  # the loss's evidence level (manifest); None without a loss
    reference_repo: str | None  # the repository whose code gave the loss's reference cases
    library_code_run: bool  # the library's own code was run: reference or cross-checked
    note: str


class LibrariesError(Exception):
    """Raised by :func:`load` with every problem found, each located in the file."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} error(s)")
        self.problems = sorted(problems)


def _known_losses() -> frozenset[str]:
    from kdsurvey.losses.manifest import names

    return frozenset(names())


def check(data: dict, shown: str, known: Iterable[str]) -> tuple[list[Library], list[Problem]]:
    """The libraries of a parsed file and the problems found (schema, unknown or repeated names)."""
    known = frozenset(known)
    libraries, problems = [], []
    for key, value in data.items():
        if not isinstance(value, dict):
            problems.append(Problem(shown, line_of(data, (key,)), str(key), "must be a mapping"))
            continue
        model = validate_model(_Library, value, shown, problems, prefix=(key,))
        if model is None:
            continue
        seen: dict[str, int] = {}
        for index, entry in enumerate(model.losses):
            where = (key, "losses", index)
            line = line_of(data, where)
            if entry.name in seen:
                problems.append(
                    Problem(
                        shown,
                        line_of(data, (*where, "name")),
                        f"{key}.losses[{index}].name",
                        f"{entry.name!r} is listed twice (first at line {seen[entry.name]})",
                    )
                )
            seen.setdefault(entry.name, line)
            if entry.loss is not None and entry.loss not in known:
                close = difflib.get_close_matches(entry.loss, sorted(known), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                problems.append(
                    Problem(
                        shown,
                        line_of(data, (*where, "loss")),
                        f"{key}.losses[{index}].loss",
                        f"unknown loss {entry.loss!r} (not in kdsurvey/losses/manifest.json){hint}",
                    )
                )
            if entry.loss is None and not entry.note:
                problems.append(
                    Problem(
                        shown,
                        line,
                        f"{key}.losses[{index}].note",
                        "an entry without a loss must say why in its note",
                    )
                )
        entries = tuple(Entry(e.name, e.path, e.loss, e.note or "") for e in model.losses)
        libraries.append(Library(str(key), model.repo, model.commit, entries))
    return libraries, problems


def load(path: Path | str, known: Iterable[str] | None = None) -> list[Library]:
    """The libraries of ``path`` (``papers/libraries.yaml``), in the file's order.

    ``known``: the loss names an entry may use (default: the manifest's). Raises
    :class:`LibrariesError` listing every problem, each with its line.
    """
    path = Path(path)
    shown = display_path(path)
    problems: list[Problem] = []
    if not path.is_file():
        raise LibrariesError([Problem(shown, 1, "file", "is missing")])
    data = read_mapping(path, shown, problems)
    if data is None:
        raise LibrariesError(problems)
    libraries, found = check(data, shown, _known_losses() if known is None else known)
    if found:
        raise LibrariesError(found)
    return libraries


def rows(libraries: Iterable[Library], manifest: dict | None = None) -> list[Row]:
    """One :class:`Row` per library loss, with its evidence derived from the losses' manifest.

    ``manifest``: a loaded manifest (default: the committed one, read without torch).
    """
    if manifest is None:
        from kdsurvey.losses.manifest import load as load_manifest

        manifest = load_manifest()
    by_name = {entry["name"]: entry for entry in manifest["losses"]}
    out = []
    for library in libraries:
        for e in library.entries:
            info = by_name.get(e.loss) if e.loss else None
            if e.loss and info is None:
                raise KeyError(f"{library.name} {e.name}: loss {e.loss!r} is not in the manifest")
            reference = (info or {}).get("reference") or {}
            run = {reference.get("repo"), *reference.get("cross_checked", ())} - {None}
            out.append(
                Row(
                    library=library.name,
                    repo=library.repo,
                    name=e.name,
                    path=e.path,
                    loss=e.loss,
                    evidence=info["evidence"] if info else None,
                    reference_repo=reference.get("repo"),
                    library_code_run=library.repo in run,
                    note=e.note,
                )
            )
    return out
