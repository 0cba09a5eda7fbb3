"""Every question the tools ask git, in one place, each answered without git when it can be.

The catalogue works outside a git checkout too (an unpacked release, a test folder): callers get
a plain answer (``None``, ``{}``) when git or the history is missing, or :class:`GitError` with
git's own message where only git can answer (``--changed-since REV``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(Exception):
    """git is missing or refused; the message is git's."""


def git(where: Path | str, *args: str, timeout: float = 60) -> str:
    """``git ARGS`` run in ``where``; its stdout, or :class:`GitError` with its stderr."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git: {exc}") from None
    if done.returncode != 0:
        raise GitError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def tracked_files(folder: Path) -> list[Path] | None:
    """Files under ``folder`` that git tracks or would track (ignored ones left out), or None
    outside a git checkout."""
    try:
        listed = git(
            folder, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."
        )
    except GitError:
        return None
    return [folder / name for name in listed.split("\0") if name]


def changed_files(rev: str, paths: list[Path]) -> set[Path]:
    """Files under ``paths`` that differ from ``rev`` (``git diff --name-only REV``), plus new
    untracked ones, as resolved paths. :class:`GitError` names a bad revision."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return set()
    where = existing[0] if existing[0].is_dir() else existing[0].parent
    top = git(where, "rev-parse", "--show-toplevel").strip()
    specs = [str(p.resolve()) for p in existing]
    names = git(where, "-C", top, "diff", "--name-only", "-z", rev, "--", *specs).split("\0")
    names += git(
        where, "-C", top, "ls-files", "--others", "--exclude-standard", "-z", "--", *specs
    ).split("\0")
    return {(Path(top) / name).resolve() for name in names if name}


def added_times(folder: Path) -> str | None:
    """``git log --diff-filter=A`` of ``folder`` (NUL before each commit time, then the files it
    added), or None without history: when each record was added, for "recently added" lists."""
    try:
        return git(
            folder,
            "log",
            "--diff-filter=A",
            "--format=%x00%ct",
            "--name-only",
            "--relative",
            "--",
            ".",
            timeout=30,
        )
    except GitError:
        return None
