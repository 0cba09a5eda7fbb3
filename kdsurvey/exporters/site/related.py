"""Which papers a page points to next: related papers, and the newest additions (from git)."""

from __future__ import annotations

import bisect
import subprocess
from collections import defaultdict
from pathlib import Path

from kdsurvey.exporters.render import newest_first
from kdsurvey.records.catalogue import Catalogue
from kdsurvey.records.model import Paper

RELATED = 6  # related papers shown on a paper page
NEWEST = 8  # newest additions shown on the home page


def related(catalogue: Catalogue) -> dict[str, list[Paper]]:
    """Up to RELATED papers of the same category sharing a task, nearest in year; O(n log n).

    Each paper looks around its own position in the year-sorted list of every (category, task)
    it belongs to, so the work per paper is bounded whatever the catalogue's size.
    """
    buckets: dict[tuple[str, str], list[Paper]] = defaultdict(list)
    for p in catalogue.papers:
        for t in p.tasks:
            buckets[(p.category.value, t.value)].append(p)
    keys = {}
    for key, papers in buckets.items():
        papers.sort(key=lambda p: (p.year, p.id))
        keys[key] = [(p.year, p.id) for p in papers]
    found = {}
    for p in catalogue.papers:
        chosen: dict[str, tuple[int, int, Paper]] = {}
        for rank, t in enumerate(p.tasks):
            key = (p.category.value, t.value)
            papers, index = buckets[key], bisect.bisect_left(keys[key], (p.year, p.id))
            lo, hi = max(0, index - RELATED), min(len(papers), index + RELATED + 1)
            for q in papers[lo:hi]:
                if q.id != p.id:
                    score = (abs(q.year - p.year), rank)
                    if q.id not in chosen or score < chosen[q.id][:2]:
                        chosen[q.id] = (*score, q)
        best = sorted(chosen.values(), key=lambda c: (c[0], c[1], -c[2].year, c[2].id))
        found[p.id] = newest_first([c[2] for c in best[:RELATED]])
    return found


def added_order(catalogue: Catalogue) -> dict[str, int]:
    """id -> commit time (seconds) at which the record was added, from git; {} without history."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(catalogue.root),
                "log",
                "--diff-filter=A",
                "--format=%x00%ct",
                "--name-only",
                "--relative",
                "--",
                ".",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    added: dict[str, int] = {}
    for chunk in out.split("\x00")[1:]:
        lines = chunk.strip().splitlines()
        if not lines or not lines[0].isdigit():
            continue
        stamp, *names = lines
        for name in names:
            stem = Path(name.strip()).stem
            if name.endswith(".yaml") and stem:
                added.setdefault(stem, int(stamp))  # newest commit comes first
    return added


def newest_additions(catalogue: Catalogue, count: int = NEWEST) -> list[Paper]:
    """The papers most recently added to the catalogue (git); records not committed yet first."""
    added = added_order(catalogue)
    order = {p.id: i for i, p in enumerate(newest_first(catalogue.papers))}
    return sorted(catalogue.papers, key=lambda p: (-added.get(p.id, 2**62), order[p.id]))[:count]
