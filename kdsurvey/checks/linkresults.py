"""What became of each link: the verdicts, the report rows, and the cache of past results."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kdsurvey.checks.linktargets import Target
from kdsurvey.files import write_atomic

OK, DEAD, INCONCLUSIVE = "ok", "dead", "inconclusive"
VERDICT_ORDER = {DEAD: 0, INCONCLUSIVE: 1, OK: 2}


@dataclass
class Result:
    """The outcome of one check, shared by every place the link appears."""

    verdict: str
    status: int | None = None
    final_url: str | None = None
    redirects: list[tuple[int, str]] = field(default_factory=list)
    attempts: int = 0
    message: str = ""
    suggestion: str | None = None  # the URL to write instead (permanent redirect, moved repo)
    cached: bool = False
    checked_at: float = 0.0
    error_kind: str | None = None  # no answer at all: Outcome.error_kind (dns, refused, ...)


@dataclass
class Verdict:
    """One row of the report: a link at one place of one file, and what became of it."""

    url: str
    verdict: str
    status: int | None
    final_url: str | None
    redirects: list[tuple[int, str]]
    attempts: int
    message: str
    source: str  # file, e.g. papers/x.yaml
    line: int
    field: str
    kind: str = "url"
    suggestion: str | None = None
    cached: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        data["redirects"] = [list(hop) for hop in self.redirects]
        return data


def verdicts(targets: list[Target], results: dict[str, Result]) -> list[Verdict]:
    rows = []
    for target in targets:
        result = results[target.cache_key]
        for source in target.sources:
            rows.append(
                Verdict(
                    url=source.url,
                    verdict=result.verdict,
                    status=result.status,
                    final_url=result.final_url,
                    redirects=list(result.redirects),
                    attempts=result.attempts,
                    message=result.message,
                    source=source.path,
                    line=source.line,
                    field=source.field,
                    kind=target.kind,
                    suggestion=result.suggestion,
                    cached=result.cached,
                )
            )
    rows.sort(key=lambda v: (VERDICT_ORDER[v.verdict], v.source, v.line, v.url))
    return rows


class Cache:
    """A JSON file of past results. Only ``ok`` results younger than ``ttl`` are reused: anything
    that failed is checked again on every run."""

    VERSION = 1

    def __init__(self, path: Path | str | None, ttl: float, now: Callable[[], float] = time.time):
        self.path = Path(path) if path else None
        self.ttl = ttl
        self.now = now
        self.entries: dict[str, dict] = {}
        self.hits = 0
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("version") == self.VERSION and isinstance(data.get("entries"), dict):
                    self.entries = data["entries"]
            except (OSError, ValueError, AttributeError) as exc:
                print(f"warning: ignoring unreadable cache {self.path}: {exc}", file=sys.stderr)

    def fresh(self, key: str) -> Result | None:
        entry = self.entries.get(key)
        if not entry or entry.get("verdict") != OK:
            return None
        if self.now() - float(entry.get("checked_at", 0)) >= self.ttl:
            return None
        self.hits += 1
        fields = {k: v for k, v in entry.items() if k in Result.__dataclass_fields__}
        fields["redirects"] = [tuple(hop) for hop in fields.get("redirects", [])]
        return Result(**{**fields, "cached": True})

    def store(self, key: str, result: Result) -> None:
        if result.cached:
            return
        entry = asdict(result)
        entry.pop("cached")
        entry["redirects"] = [list(hop) for hop in result.redirects]
        with self._lock:
            self.entries[key] = entry

    def save(self) -> None:
        if not self.path:
            return
        horizon = self.now() - 10 * self.ttl  # forget what has not been seen for long
        keep = {
            k: v
            for k, v in sorted(self.entries.items())
            if float(v.get("checked_at", 0)) >= horizon
        }
        write_atomic(
            self.path,
            json.dumps({"version": self.VERSION, "entries": keep}, indent=1, sort_keys=True) + "\n",
        )
