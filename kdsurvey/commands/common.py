"""What every command shares: the clean-failure exception, the shared options, the catalogue
loader that reports a broken catalogue the way ``kdsurvey validate`` does."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from kdsurvey import problems
from kdsurvey.records.catalogue import Catalogue, CatalogueError, already_message, load
from kdsurvey.records.model import TaskInfo, Venue
from kdsurvey.records.reading import TASKS_FILE, VENUES_FILE, read_table

#: The exit codes of every command (``kdsurvey --help`` shows this table; CONTRIBUTING.md too).
EXIT_CODES = (
    (0, "success (new, import: also a draft with TODO fields; stderr names them)"),
    (1, "the catalogue or a check found problems (errors, dead links, a stale README, ...)"),
    (2, "bad usage: unknown option, missing file or folder, nothing matches, bad revision"),
    (3, "check links only: the network (or DNS) was down, nothing is known; try again later"),
    (130, "interrupted (Ctrl-C)"),
)


class Failure(Exception):
    """A command's clean failure: ``message`` goes to stderr, exit with ``code``
    (1: the catalogue or a check found problems, 2: bad usage)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


#: ``--papers DIR``: every command that reads the catalogue.
PAPERS = argparse.ArgumentParser(add_help=False)
PAPERS.add_argument(
    "--papers", default="papers", metavar="DIR", help="catalogue folder (default: ./papers)"
)
#: ``--format text|json``: commands whose output machines read.
FORMAT = argparse.ArgumentParser(add_help=False)
FORMAT.add_argument(
    "--format", choices=["text", "json"], default="text", help="output format (default: text)"
)


def command(subparsers, name: str, func, help: str, parents=(PAPERS,), extra: str | None = None):
    """A sub-command parser that runs ``func(args)``; ``extra`` names the optional dependencies it
    needs (``losses``, ``arena``), so that a missing one is answered with its install line."""
    parser = subparsers.add_parser(name, help=help, description=help, parents=list(parents))
    parser.set_defaults(func=func, extra=extra)
    return parser


def missing_extra(args, exc: ModuleNotFoundError) -> str | None:
    """The stderr line for a module the command's extra brings that is not installed; None when
    the command declares no extra or the missing module is kdsurvey's own (a bug to show)."""
    extra = getattr(args, "extra", None)
    module = (exc.name or "").partition(".")[0]
    if not extra or not module or module == "kdsurvey":
        return None
    return f"this command needs {module} (the {extra} extra): pip install 'kdsurvey[{extra}]'"


def _device_count(kind: str) -> int:
    """How many devices of type ``kind`` (``cuda``, ``mps``, ``xpu``...) torch can use here."""
    import torch

    backend = getattr(torch.backends, kind, None) if kind == "mps" else getattr(torch, kind, None)
    is_available = getattr(backend, "is_available", None)
    if not (is_available and is_available()):
        return 0
    count = getattr(backend, "device_count", None)
    return count() if count else 1


def check_device(device: str | None, count: Callable[[str], int] | None = None) -> None:
    """``--device``: bad usage (exit 2, one line) when it names no torch device or one this
    machine lacks, before any work starts; otherwise every loss would fail on its own (``losses
    verify`` reported 186 failures) or a traceback would escape (``arena``). ``None``: the
    command's default. ``count`` (device type -> how many; default :func:`_device_count`) is
    injectable for tests."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise Failure(
            f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1)", 2
        ) from None
    if parsed.type == "cpu":
        return
    found = (count or _device_count)(parsed.type)
    if found <= (parsed.index or 0):
        have = f"{found} {parsed.type} device(s)" if found else f"no {parsed.type} device"
        raise Failure(
            f"--device {device}: torch {torch.__version__} sees {have} on this machine; "
            "use --device cpu",
            2,
        )


def add_timeout(parser, what: str) -> None:
    """``--timeout S``: the longest wait for each read from ``what`` (15 s by default)."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="S",
        help=f"longest wait for each read from {what} (default 15 s)",
    )


def group(subparsers, name: str, help: str):
    """A noun group (``kdsurvey check links``): the subparsers of its verbs."""
    parser = subparsers.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="NOUN")


def load_catalogue(args) -> Catalogue:
    """The catalogue of ``--papers``; a broken one fails the command with every problem
    (:func:`fail_with`); a ``--papers`` that is no folder is bad usage (exit 2)."""
    if not Path(args.papers).is_dir():
        raise Failure(f"--papers {args.papers}: no such folder", 2)
    try:
        return load(args.papers)
    except CatalogueError as exc:
        fail_with(args, exc.problems, papers=exc.records, categories=exc.categories)


def fail_with(args, found: list[problems.Problem], **counts) -> None:
    """Fail (exit 1) with every problem: as text on stderr or, with ``--format json``, in the
    shape ``kdsurvey validate`` prints; in GitHub Actions also as ``::error`` annotations on the
    lines of the pull request (stdout, or stderr beside JSON), as CONTRIBUTING.md promises."""
    as_json = getattr(args, "format", "text") == "json"
    if as_json:
        print(json.dumps(problems.as_json(found, **counts), indent=2))
    else:
        sys.stderr.write(problems.text(found))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        (sys.stderr if as_json else sys.stdout).write(problems.annotations(found))
    raise Failure("" if as_json else f"{len(found)} error(s)", 1)


def check_data_files(args, view) -> None:
    """The data files beside the records that name records or losses, when they exist:
    ``libraries.yaml`` (known losses, no name twice) and ``survey.yaml`` (every id a record),
    read through the build's :class:`~kdsurvey.exporters.view.View` (once for every exporter)."""
    catalogue = view.catalogue
    if view.data_problems:
        fail_with(
            args,
            view.data_problems,
            papers=len(catalogue.papers),
            categories=len(catalogue.categories),
        )


def already_catalogued(found: tuple[str, str] | None) -> None:
    """Fail (exit 1) when ``found`` (:func:`kdsurvey.records.catalogue.same_paper`) names a record:
    what ``new`` and ``import bibtex`` say instead of writing the same paper twice."""
    if found:
        raise Failure(already_message(found))


def check_venue(venue: str | None, venues: dict) -> None:
    """``--venue KEY`` must be a key of venues.yaml (bad usage, exit 2, before anything else)."""
    if venue is not None and venue not in venues:
        raise Failure(f"--venue {venue}: not a key of venues.yaml", 2)


def todo_note(todo: list[str], written: str | None) -> str:
    """The stderr line of ``new`` and ``import bibtex`` about a record: where it was written (a
    dry run names no file) and which fields still need the contributor (marked TODO). Either way
    the command succeeded (exit 0): ``kdsurvey validate`` fails until the TODO lines are filled."""
    head = f"wrote {written}" if written else "dry run, nothing written"
    if not todo:
        return head
    then = "then run `kdsurvey validate`" if written else "in the record once written"
    return f"{head}; still to fill in: {', '.join(todo)} (the TODO lines), {then}"


def read_tasks(root: Path) -> dict | None:
    """The tasks table (``papers/tasks.yaml``), None where the folder has none (left unchecked)."""
    if not (root / TASKS_FILE).is_file():
        return None
    found: list[problems.Problem] = []
    tasks = read_table(root / TASKS_FILE, TaskInfo, found)
    if found:
        raise Failure(problems.text(found).rstrip("\n"))
    return tasks


def read_venues(root: Path) -> dict:
    """The venues table alone (commands that make records need no whole catalogue)."""
    found: list[problems.Problem] = []
    venues = read_table(root / VENUES_FILE, Venue, found)
    if found:
        raise Failure(problems.text(found).rstrip("\n"))
    return venues
