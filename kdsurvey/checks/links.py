"""``kdsurvey check links``: is every link of every record, and of the site's pages, still alive?

What is checked, and how:

* paper, project and other web links: ``HEAD`` (``GET`` when a server refuses ``HEAD`` with
  405/403/501, and to confirm a 404/410), redirects followed one hop at a time and reported; a
  permanent redirect (301/308) suggests the new URL;
* arXiv ids, including ``arxiv.org/abs/<id>`` links, through the arXiv API in batched id lists,
  one request every 3 seconds;
* DOIs, including ``doi.org/<doi>`` links, through Crossref (and the DOI handle API for DOIs that
  another agency registered);
* GitHub repositories through the GitHub API when ``GITHUB_TOKEN`` is set (exists, archived,
  moved, last push); as plain web links otherwise.

Checks run on a bounded pool of threads with a per-host limit and a polite delay between requests
to the same host; retries back off on 429/5xx and honour ``Retry-After``. Verdicts are ``ok``,
``dead`` (404/410, no such id, host not found, redirect loop) and ``inconclusive`` (bot walls,
timeouts and server errors after retries, hosts known to block robots: "unverified"). Only dead
links fail the command. A cache file lets a re-run check only what is stale.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from kdsurvey.importers.sources import (
    ARXIV_BATCH,
    ARXIV_INTERVAL,
    DEFAULT_ARXIV_API,
    DEFAULT_CROSSREF_API,
    DEFAULT_DOI_API,
    DEFAULT_GITHUB_API,
    add_api_options,
    api_base,
    arxiv_id_of_url,
    doi_of_url,
    github_repo_of_url,
)

HELP = "check every link of the records (and of the site's pages): ok, dead or inconclusive"

OK, DEAD, INCONCLUSIVE = "ok", "dead", "inconclusive"
VERDICT_ORDER = {DEAD: 0, INCONCLUSIVE: 1, OK: 2}
LINK_FIELDS = ("paper", "arxiv", "doi", "code", "project")

HEAD_REFUSED = frozenset({403, 405, 501})
DEAD_STATUSES = frozenset({404, 410})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})


@dataclass(frozen=True)
class HostPolicy:
    """How to treat one host. ``None`` fields take the command's defaults (--per-host, --delay)."""

    concurrency: int | None = None
    delay: float | None = None
    blocks_robots: bool = False  # refusals, timeouts and 5xx are "unverified", not failures
    method: str = "HEAD"  # first method to try; GET for hosts that mishandle HEAD
    skip: bool = False  # never request; always "unverified"


#: Publishers that answer automated requests with 403, challenges or timeouts whatever the URL.
ROBOT_WALLS = (
    "ieeexplore.ieee.org",
    "dl.acm.org",
    "www.sciencedirect.com",
    "sciencedirect.com",
    "link.springer.com",
    "www.worldscientific.com",
    "onlinelibrary.wiley.com",
    "www.researchgate.net",
    "www.tandfonline.com",
    "academic.oup.com",
    "www.jstor.org",
    "journals.sagepub.com",
    "www.cell.com",
    "pubs.acs.org",
    "www.semanticscholar.org",
)

HOST_POLICIES: dict[str, HostPolicy] = {
    **{
        host: HostPolicy(concurrency=1, delay=2.0, blocks_robots=True, method="GET")
        for host in ROBOT_WALLS
    },
    "arxiv.org": HostPolicy(concurrency=1, delay=ARXIV_INTERVAL),
    "export.arxiv.org": HostPolicy(concurrency=1, delay=0.0),  # the client throttles itself
    "api.crossref.org": HostPolicy(concurrency=4, delay=0.05),
    "api.github.com": HostPolicy(concurrency=4, delay=0.0),
    "github.com": HostPolicy(concurrency=2, delay=1.0),
    "doi.org": HostPolicy(concurrency=2, delay=0.2),
    "openreview.net": HostPolicy(concurrency=1, delay=1.0, method="GET"),
}


def policy_for(host: str, policies: dict[str, HostPolicy] = HOST_POLICIES) -> HostPolicy:
    """The policy of a host name (or of the nearest parent domain that has one)."""
    name = host.lower().rsplit("@", 1)[-1].split(":", 1)[0]
    while name:
        if name in policies:
            return policies[name]
        name = name.partition(".")[2]
    return HostPolicy()


# -- what to check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a link is written: file, line, field, and the link as written there."""

    path: str
    line: int
    field: str
    url: str


@dataclass
class Target:
    """One check: a web link, an arXiv id, a DOI or a GitHub repository, and where it is used."""

    kind: str  # url | arxiv | doi | github
    key: str
    url: str
    sources: list[Source] = field(default_factory=list)

    @property
    def cache_key(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.lower()


def classify(field_name: str, value: str, github_api: bool) -> Target:
    """The check a link needs: identifiers go to their APIs, everything else is a web link."""
    if field_name == "arxiv":
        return Target("arxiv", value, f"https://arxiv.org/abs/{value}")
    if field_name == "doi":
        return Target("doi", value, f"https://doi.org/{value}")
    if arxiv := arxiv_id_of_url(value):
        return Target("arxiv", arxiv, value)
    if doi := doi_of_url(value):
        return Target("doi", doi, value)
    if github_api and (repo := github_repo_of_url(value)):
        return Target("github", "/".join(repo), value)
    return Target("url", value, value)


def _add(targets: dict[str, Target], target: Target, source: Source) -> None:
    known = targets.setdefault(target.cache_key, target)
    known.sources.append(source)


def record_targets(catalogue, papers=None, github_api: bool = False) -> list[Target]:
    """The checks for the links of ``papers`` (all records by default), merged across records."""
    from kdsurvey.records.catalogue import display_path

    targets: dict[str, Target] = {}
    for paper in catalogue.papers if papers is None else papers:
        path = display_path(catalogue.path_of(paper))
        raw = catalogue.source(paper).get("links")
        for name in LINK_FIELDS:
            value = raw.get(name) if isinstance(raw, dict) else None
            if value is None:
                value = getattr(paper.links, name)
            if value is None:
                continue
            value = str(value)
            source = Source(path, catalogue.line_of(paper, "links", name), f"links.{name}", value)
            _add(targets, classify(name, value, github_api), source)
    return list(targets.values())


SITE_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".j2", ".jinja", ".yml", ".yaml"}
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`\[\](){}|\\^]+")
PLACEHOLDER_HOSTS = re.compile(
    r"^(localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1\]|(.+\.)?example\.(com|org|net)"
    r"|.+\.(example|invalid|test|localhost))(:\d+)?$"
)


def site_files(site: Path) -> list[Path]:
    """The hand-written pages of the site: files git tracks or would track (generated ones are
    ignored by git and derive from the records, which are checked anyway)."""
    if not site.is_dir():
        return []
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
            cwd=site,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        files = [site / name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in site.rglob("*") if not any(s.startswith(".") for s in p.parts)]
    return sorted(p for p in files if p.suffix.lower() in SITE_SUFFIXES and p.is_file())


def urls_in_text(text: str) -> Iterable[tuple[int, str]]:
    """``(line, url)`` for every absolute http(s) link in a page, templated ones left out."""
    for number, line in enumerate(text.splitlines(), 1):
        for match in URL_IN_TEXT.finditer(line):
            url = match.group(0).rstrip(".,;:!?*_'\"")
            following = line[match.end() : match.end() + 1]
            host = urlsplit(url).netloc
            if following == "{" or not host or PLACEHOLDER_HOSTS.match(host.lower()):
                continue
            yield number, url


def site_targets(files: Iterable[Path], github_api: bool = False) -> list[Target]:
    from kdsurvey.records.catalogue import display_path

    targets: dict[str, Target] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for number, url in urls_in_text(text):
            _add(
                targets,
                classify("url", url, github_api),
                Source(display_path(path), number, "link", url),
            )
    return list(targets.values())


def merge(*groups: list[Target]) -> list[Target]:
    targets: dict[str, Target] = {}
    for group in groups:
        for target in group:
            for source in target.sources:
                _add(targets, Target(target.kind, target.key, target.url), source)
    return list(targets.values())


def changed_files(rev: str, paths: list[Path]) -> set[Path]:
    """Files under ``paths`` that differ from ``rev`` (``git diff --name-only REV``), plus new
    untracked ones, as resolved paths. Raises ValueError with git's message."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return set()
    where = existing[0] if existing[0].is_dir() else existing[0].parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=60
            )
        except OSError as exc:
            raise ValueError(f"git: {exc}") from None
        if done.returncode != 0:
            raise ValueError(done.stderr.strip() or f"git {' '.join(args)} failed")
        return done.stdout

    top = Path(git("rev-parse", "--show-toplevel").strip())
    specs = [str(p.resolve()) for p in existing]
    names = git("-C", str(top), "diff", "--name-only", "-z", rev, "--", *specs).split("\0")
    names += git(
        "-C", str(top), "ls-files", "--others", "--exclude-standard", "-z", "--", *specs
    ).split("\0")
    return {(top / name).resolve() for name in names if name}


# -- results ---------------------------------------------------------------------------------------


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
        from kdsurvey.files import write_atomic

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


# -- checking --------------------------------------------------------------------------------------


@dataclass
class Settings:
    """Everything that shapes a run; tests shrink delays, backoff and timeouts."""

    workers: int = 16
    per_host: int = 2
    delay: float = 0.5
    timeout: float = 15.0
    retries: int = 2
    backoff: float = 1.0
    max_retry_after: float = 60.0
    max_redirects: int = 10
    arxiv_api: str = DEFAULT_ARXIV_API
    crossref_api: str = DEFAULT_CROSSREF_API
    github_api: str = DEFAULT_GITHUB_API
    doi_api: str = DEFAULT_DOI_API
    github_token: str | None = None
    arxiv_interval: float = ARXIV_INTERVAL
    arxiv_batch: int = ARXIV_BATCH
    mailto: str | None = None
    policies: dict[str, HostPolicy] = field(default_factory=lambda: dict(HOST_POLICIES))
    sleep: Callable[[float], None] = time.sleep


@dataclass
class _Task:
    host: str
    targets: list[Target]
    run: Callable[[], dict[str, Result]]


class _Scheduler:
    """Hands tasks to worker threads so that no host has more than its limit in flight, and the
    starts at one host are ``delay`` apart. A busy host never blocks a worker: it takes another
    host's task instead."""

    def __init__(
        self, tasks: list[_Task], limit: Callable[[str], int], delay: Callable[[str], float]
    ):
        self.queues: dict[str, deque[_Task]] = {}
        for task in tasks:
            self.queues.setdefault(task.host, deque()).append(task)
        self.limit, self.delay = limit, delay
        self.active: Counter[str] = Counter()
        self.next_start: dict[str, float] = {}
        self.cond = threading.Condition()
        self.peak: Counter[str] = Counter()

    def take(self) -> _Task | None:
        with self.cond:
            while True:
                if not self.queues:
                    return None
                now, wait, best = time.monotonic(), None, None
                for host, queue in self.queues.items():
                    if self.active[host] >= self.limit(host):
                        continue
                    ready = self.next_start.get(host, 0.0)
                    if ready > now:
                        wait = ready - now if wait is None else min(wait, ready - now)
                        continue
                    # the host with the most work left goes first, so that no host is left
                    # alone (with only its own few slots) at the end of the run
                    if best is None or len(queue) > len(self.queues[best]):
                        best = host
                if best is None:
                    self.cond.wait(timeout=wait)
                    continue
                queue = self.queues[best]
                task = queue.popleft()
                if not queue:
                    del self.queues[best]
                self.active[best] += 1
                self.peak[best] = max(self.peak[best], self.active[best])
                self.next_start[best] = now + self.delay(best)
                return task

    def done(self, task: _Task) -> None:
        with self.cond:
            self.active[task.host] -= 1
            self.cond.notify_all()


class LinkChecker:
    """Runs the checks of a list of targets; see :func:`LinkChecker.run`."""

    def __init__(self, settings: Settings | None = None):
        from kdsurvey.importers.sources import (
            ArxivClient,
            CrossrefClient,
            DoiClient,
            GitHubClient,
            Http,
            RetryPolicy,
        )

        self.settings = s = settings or Settings()
        policy = RetryPolicy(
            timeout=s.timeout,
            retries=s.retries,
            backoff=s.backoff,
            max_wait=s.max_retry_after,
            sleep=s.sleep,
        )
        self.http = Http(policy, pool=max(4, s.workers))
        self.arxiv = ArxivClient(self.http, s.arxiv_api, s.arxiv_interval, s.arxiv_batch)
        self.crossref = CrossrefClient(self.http, s.crossref_api, s.mailto)
        self.doi = DoiClient(self.http, s.doi_api)
        self.github = GitHubClient(self.http, s.github_api, s.github_token)
        self.peak: Counter[str] = Counter()

    def close(self) -> None:
        self.http.close()

    # policies --------------------------------------------------------------------------------

    def policy(self, host: str) -> HostPolicy:
        return policy_for(host, self.settings.policies)

    def _limit(self, host: str) -> int:
        if host == urlsplit(self.settings.arxiv_api).netloc.lower():
            return 1  # one request at a time, spaced by the client's throttle
        return max(1, self.policy(host).concurrency or self.settings.per_host)

    def _delay(self, host: str) -> float:
        delay = self.policy(host).delay
        return self.settings.delay if delay is None else delay

    # the run ---------------------------------------------------------------------------------

    def run(
        self,
        targets: list[Target],
        cache: Cache | None = None,
        progress: Callable[[int, int, Target, Result], None] | None = None,
    ) -> dict[str, Result]:
        """Check every target (cached ``ok`` results younger than the TTL are reused)."""
        results: dict[str, Result] = {}
        pending: list[Target] = []
        for target in targets:
            hit = cache.fresh(target.cache_key) if cache else None
            if hit is not None:
                results[target.cache_key] = hit
            else:
                pending.append(target)
        total, done = len(targets), 0
        for target in targets:
            if target.cache_key in results:
                done += 1
                if progress:
                    progress(done, total, target, results[target.cache_key])
        tasks = self._tasks(pending)
        lock = threading.Lock()
        scheduler = _Scheduler(tasks, self._limit, self._delay)

        def finish(task: _Task, found: dict[str, Result]) -> None:
            nonlocal done
            with lock:
                for target in task.targets:
                    result = found.get(target.cache_key) or Result(
                        INCONCLUSIVE, message="not checked (internal error)"
                    )
                    result.checked_at = result.checked_at or time.time()
                    results[target.cache_key] = result
                    if cache:
                        cache.store(target.cache_key, result)
                    done += 1
                    if progress:
                        progress(done, total, target, result)

        def worker() -> None:
            while (task := scheduler.take()) is not None:
                try:
                    found = task.run()
                except Exception as exc:  # noqa: BLE001 - one broken check must not stop the run
                    found = {
                        t.cache_key: Result(INCONCLUSIVE, message=f"check failed: {exc!r}")
                        for t in task.targets
                    }
                finally:
                    scheduler.done(task)
                finish(task, found)

        threads = [
            threading.Thread(target=worker, name=f"links-{i}", daemon=True)
            for i in range(min(self.settings.workers, len(tasks)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.peak = scheduler.peak
        return results

    def _tasks(self, targets: list[Target]) -> list[_Task]:
        tasks: list[_Task] = []
        arxiv = [t for t in targets if t.kind == "arxiv"]
        arxiv_host = urlsplit(self.settings.arxiv_api).netloc.lower()
        batch = max(1, self.settings.arxiv_batch)
        for start in range(0, len(arxiv), batch):
            chunk = arxiv[start : start + batch]
            tasks.append(_Task(arxiv_host, chunk, partial(self.check_arxiv, chunk)))
        checks = {"url": self.check_url, "doi": self.check_doi, "github": self.check_github}
        hosts = {
            "doi": urlsplit(self.settings.crossref_api).netloc.lower(),
            "github": urlsplit(self.settings.github_api).netloc.lower(),
        }
        for target in targets:
            if target.kind not in checks:
                continue
            host = hosts.get(target.kind) or target.host
            argument = target.url if target.kind == "url" else target.key
            run = partial(_one, checks[target.kind], target, argument)
            tasks.append(_Task(host, [target], run))
        return tasks

    # web links -------------------------------------------------------------------------------

    def check_url(self, url: str) -> Result:
        """HEAD (GET when refused), redirects followed hop by hop, retries inside each request."""
        host = urlsplit(url).hostname or ""
        policy = self.policy(host)
        if policy.skip:
            return Result(
                INCONCLUSIVE, message=f"unverified: {host} blocks automated checks (not requested)"
            )
        method, current = policy.method, url
        hops: list[tuple[int, str]] = []
        visits = Counter([url])
        attempts = 0
        while True:
            outcome = self.http.request(method, current, stream=method == "GET")
            attempts += outcome.attempts
            response = outcome.response
            if response is None:
                return self._failed(outcome, current, hops, attempts, policy, host)
            status, location = response.status_code, response.headers.get("Location")
            response.close()
            if method == "HEAD" and (status in HEAD_REFUSED or status in DEAD_STATUSES):
                method = "GET"  # refused, or confirm a 404 with the method a browser uses
                continue
            if status in REDIRECTS and location:
                current = urljoin(current, location)
                hops.append((status, current))
                visits[current] += 1
                if visits[current] >= 3:
                    return Result(
                        DEAD, status, current, hops, attempts, f"redirect loop through {current}"
                    )
                if len(hops) > self.settings.max_redirects:
                    return Result(
                        DEAD,
                        status,
                        current,
                        hops,
                        attempts,
                        f"more than {self.settings.max_redirects} redirects",
                    )
                continue
            break
        landed = urlsplit(current).hostname or host
        if landed != host and self.policy(landed).blocks_robots:
            policy, host = self.policy(landed), landed  # redirected to a publisher's bot wall
        verdict, message = self._judge(status, policy, host, outcome)
        result = Result(verdict, status, current, hops, attempts, message)
        moved = _moved_to(hops)
        if verdict == OK and moved and moved != url:
            result.suggestion = moved
            result.message = f"moved permanently ({hops[0][0]}): use {moved}"
        elif verdict == OK and hops:
            result.message = f"redirected to {current}"
        return result

    @staticmethod
    def _judge(status: int, policy: HostPolicy, host: str, outcome) -> tuple[str, str]:
        if 200 <= status < 300:
            return OK, ""
        if status in DEAD_STATUSES:
            return DEAD, "not found" if status == 404 else "gone"
        if status in (401, 403):
            reason = "access denied"
        elif status == 429:
            reason = outcome.error or f"rate limited after {outcome.attempts} attempts"
        elif status >= 500:
            reason = f"server error after {outcome.attempts} attempt(s)"
        elif status in REDIRECTS:
            reason = "redirect without a Location"
        else:
            reason = f"unexpected HTTP {status}"
        if policy.blocks_robots:
            return INCONCLUSIVE, f"unverified: {host} blocks automated checks ({reason})"
        if status in (401, 403):
            reason += " (a bot wall?)"
        return INCONCLUSIVE, reason

    @staticmethod
    def _failed(outcome, current, hops, attempts, policy, host) -> Result:
        message = f"{outcome.error} after {attempts} attempt(s)"
        if outcome.error_kind == "dns":
            return Result(DEAD, None, current, hops, attempts, outcome.error)
        if policy.blocks_robots:
            message = f"unverified: {host} blocks automated checks ({message})"
        return Result(INCONCLUSIVE, None, current, hops, attempts, message)

    # identifiers -----------------------------------------------------------------------------

    def check_arxiv(self, targets: list[Target]) -> dict[str, Result]:
        """One batched API request for many ids; ids missing from the answer are asked again once
        (the API sometimes answers an empty feed) before they are called dead."""
        from kdsurvey.importers.sources import SourceError

        ids = [t.key for t in targets]
        found: dict = {}
        error = None
        try:
            found = self.arxiv.fetch(ids)
            missing = [i for i in ids if i not in found]
            if missing:
                found.update(self.arxiv.fetch(missing))
        except SourceError as exc:
            error = exc
        results = {}
        for i in ids:
            if i in found:
                results[f"arxiv:{i}"] = _arxiv_ok(found[i])
            elif error is not None:
                results[f"arxiv:{i}"] = Result(
                    INCONCLUSIVE, error.status, attempts=error.attempts, message=error.message
                )
            else:
                results[f"arxiv:{i}"] = Result(
                    DEAD, 200, attempts=1, message="arXiv API: no paper with this id"
                )
        return results

    def check_doi(self, doi: str) -> Result:
        from kdsurvey.importers.sources import SourceError

        try:
            work = self.crossref.work(doi)
        except SourceError as exc:
            return Result(INCONCLUSIVE, exc.status, attempts=exc.attempts, message=exc.message)
        if work is not None:
            return Result(
                OK,
                200,
                f"https://doi.org/{doi}",
                attempts=1,
                message=f"Crossref: {_clip(work.title)}",
            )
        try:
            registered = self.doi.exists(doi)
        except SourceError as exc:
            return Result(
                INCONCLUSIVE,
                exc.status,
                attempts=exc.attempts,
                message=f"not in Crossref; {exc.message}",
            )
        if registered:
            return Result(
                OK,
                200,
                f"https://doi.org/{doi}",
                attempts=2,
                message="registered (by an agency other than Crossref)",
            )
        return Result(DEAD, 404, attempts=2, message="DOI is not registered")

    def check_github(self, key: str) -> Result:
        from kdsurvey.importers.sources import SourceError

        owner, name = key.split("/", 1)
        try:
            repo = self.github.repo(owner, name)
        except SourceError as exc:
            return Result(INCONCLUSIVE, exc.status, attempts=exc.attempts, message=exc.message)
        if repo is None:
            return Result(DEAD, 404, attempts=1, message="GitHub: no such repository")
        if repo.disabled:
            return Result(
                DEAD, 200, repo.html_url, attempts=1, message="GitHub: repository disabled"
            )
        notes = []
        result = Result(OK, 200, repo.html_url, attempts=1)
        if repo.moved:
            result.suggestion = repo.html_url
            notes.append(f"moved: use {repo.html_url}")
        if repo.archived:
            notes.append("archived")
        if repo.pushed_at:
            notes.append(f"last push {repo.pushed_at[:10]}")
        result.message = "GitHub: " + ", ".join(notes) if notes else "GitHub"
        return result


def _one(check: Callable[[str], Result], target: Target, argument: str) -> dict[str, Result]:
    return {target.cache_key: check(argument)}


def _arxiv_ok(entry) -> Result:
    return Result(
        OK, 200, entry.url, attempts=1, message=f"arXiv v{entry.version}: {_clip(entry.title)}"
    )


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _moved_to(hops: list[tuple[int, str]]) -> str | None:
    """Where the leading run of permanent redirects leads: the URL to write instead."""
    moved = None
    for status, url in hops:
        if status not in PERMANENT:
            break
        moved = url
    return moved


# -- reporting -------------------------------------------------------------------------------------


def summary(rows: list[Verdict], cache_hits: int = 0) -> dict:
    counts = Counter(row.verdict for row in rows)
    return {
        "links": len(rows),
        OK: counts[OK],
        DEAD: counts[DEAD],
        INCONCLUSIVE: counts[INCONCLUSIVE],
        "from_cache": cache_hits,
        "moved": sum(1 for row in rows if row.suggestion),
    }


def table(rows: list[Verdict]) -> str:
    if not rows:
        return "no links to check\n"
    where = [f"{row.source}:{row.line}" for row in rows]
    width = max(len(w) for w in where)
    lines = [f"{'verdict':<12}  {'http':>4}  {'where':<{width}}  url  (message)"]
    for row, at in zip(rows, where, strict=True):
        status = str(row.status) if row.status is not None else "-"
        note = f"  ({row.message})" if row.message else ""
        cached = " [cached]" if row.cached else ""
        lines.append(f"{row.verdict:<12}  {status:>4}  {at:<{width}}  {row.url}{note}{cached}")
    return "\n".join(lines) + "\n"


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def annotations(rows: list[Verdict]) -> str:
    """GitHub Actions workflow commands: errors for dead links, warnings, notices for moves."""
    out = []
    for row in rows:
        if row.verdict == DEAD:
            level, title = "error", "dead link"
        elif row.verdict == INCONCLUSIVE:
            level, title = "warning", "link not verified"
        elif row.suggestion:
            level, title = "notice", "link moved"
        else:
            continue
        text = f"{row.field}: {row.url}" + (f": {row.message}" if row.message else "")
        out.append(
            f"::{level} file={_escape(row.source, True)},line={row.line},"
            f"title={_escape(title, True)}::{_escape(text)}"
        )
    return "\n".join(out) + ("\n" if out else "")


def markdown(rows: list[Verdict], counts: dict) -> str:
    """The weekly report (the body of the tracking issue)."""
    lines = [
        "# Link check",
        "",
        f"{counts['links']} links: {counts[OK]} ok, {counts[DEAD]} dead, "
        f"{counts[INCONCLUSIVE]} inconclusive.",
        "",
    ]
    for verdict, heading in ((DEAD, "Dead"), (INCONCLUSIVE, "Inconclusive")):
        chosen = [r for r in rows if r.verdict == verdict]
        if not chosen:
            continue
        lines += [
            f"## {heading} ({len(chosen)})",
            "",
            "| where | link | http | message |",
            "|---|---|---|---|",
        ]
        for row in chosen:
            message = row.message.replace("|", "\\|")
            lines.append(
                f"| `{row.source}:{row.line}` ({row.field}) | <{row.url}> | "
                f"{row.status if row.status is not None else '-'} | {message} |"
            )
        lines.append("")
    moved = [r for r in rows if r.suggestion]
    if moved:
        lines += [f"## Moved ({len(moved)})", ""]
        lines += [f"- `{r.source}:{r.line}`: <{r.url}> -> <{r.suggestion}>" for r in moved]
        lines.append("")
    if not counts[DEAD]:
        lines += ["No dead links.", ""]
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``7d``."""
    import argparse

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 12h, 7d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * unit


def add_arguments(p) -> None:
    p.add_argument(
        "--changed-since",
        metavar="REV",
        help="check only records (and site pages) changed since REV (git diff REV)",
    )
    p.add_argument("--cache", metavar="FILE", help="reuse ok results younger than --ttl")
    p.add_argument(
        "--ttl",
        type=duration,
        default=7 * 86400,
        metavar="DURATION",
        help="how long a cached ok result stays fresh (default 7d)",
    )
    p.add_argument(
        "--site",
        default="site",
        metavar="DIR",
        help="also check the links of the site's hand-written pages (default: site)",
    )
    p.add_argument("--no-site", action="store_true", help="check the records only")
    p.add_argument("--workers", type=int, default=16, help="checks in flight (default 16)")
    p.add_argument("--per-host", type=int, default=2, help="requests in flight per host (2)")
    p.add_argument(
        "--delay",
        type=float,
        default=0.5,
        metavar="S",
        help="polite delay between requests to one host (default 0.5 s)",
    )
    p.add_argument("--timeout", type=float, default=15.0, metavar="S")
    p.add_argument("--retries", type=int, default=2, help="retries on 429/5xx/network errors")
    p.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="first retry delay, doubled each retry (default 1 s)",
    )
    p.add_argument(
        "--max-retry-after",
        type=float,
        default=60.0,
        metavar="S",
        help="longest Retry-After to wait for (default 60 s)",
    )
    p.add_argument(
        "--arxiv-interval",
        type=float,
        default=ARXIV_INTERVAL,
        metavar="S",
        help="seconds between arXiv API requests (default 3, as arXiv asks)",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write a Markdown report to FILE")
    p.add_argument("--only-problems", action="store_true", help="leave ok links out of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_api_options(p, "arxiv", "crossref", "github", "doi")


def settings_from(args) -> Settings:
    return Settings(
        workers=max(1, args.workers),
        per_host=max(1, args.per_host),
        delay=max(0.0, args.delay),
        timeout=args.timeout,
        retries=max(0, args.retries),
        backoff=max(0.0, args.backoff),
        max_retry_after=args.max_retry_after,
        arxiv_api=api_base(args, "arxiv"),
        crossref_api=api_base(args, "crossref"),
        github_api=api_base(args, "github"),
        doi_api=api_base(args, "doi"),
        github_token=os.environ.get("GITHUB_TOKEN") or None,
        arxiv_interval=max(0.0, args.arxiv_interval),
        mailto=os.environ.get("KDSURVEY_MAILTO") or None,
    )


def cli(args) -> None:
    """``kdsurvey check links``."""
    from kdsurvey.cli import Failure, _catalogue
    from kdsurvey.files import write_atomic

    catalogue = _catalogue(args)
    settings = settings_from(args)
    github_api = bool(settings.github_token)
    site = None if args.no_site or not args.site else Path(args.site)
    pages = site_files(site) if site else []
    papers = catalogue.papers
    if args.changed_since:
        try:
            changed = changed_files(
                args.changed_since, [Path(args.papers)] + ([site] if site else [])
            )
        except ValueError as exc:
            raise Failure(f"--changed-since {args.changed_since}: {exc}", 2) from None
        papers = [p for p in papers if catalogue.path_of(p).resolve() in changed]
        pages = [p for p in pages if p.resolve() in changed]
    targets = merge(record_targets(catalogue, papers, github_api), site_targets(pages, github_api))

    cache = Cache(args.cache, args.ttl) if args.cache else None
    progress = None
    if not args.quiet:
        width = len(str(len(targets)))

        def progress(done, total, target, result):
            mark = "cached" if result.cached else result.verdict
            print(f"[{done:>{width}}/{total}] {mark:<12} {target.url}", file=sys.stderr, flush=True)

    if not args.quiet:
        scope = f"{len(papers)} record(s)" + (f", {len(pages)} site page(s)" if site else "")
        print(f"checking {len(targets)} link(s) of {scope}", file=sys.stderr, flush=True)
    checker = LinkChecker(settings)
    started = time.monotonic()
    try:
        results = checker.run(targets, cache, progress)
    finally:
        checker.close()
        if cache:
            cache.save()
    rows = verdicts(targets, results)
    counts = summary(rows, cache.hits if cache else 0)
    counts["seconds"] = round(time.monotonic() - started, 2)
    if args.markdown:
        write_atomic(args.markdown, markdown(rows, counts))
    shown = [r for r in rows if r.verdict != OK or r.suggestion] if args.only_problems else rows
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if args.format == "json":
        print(json.dumps({"summary": counts, "results": [r.as_dict() for r in rows]}, indent=2))
        if in_actions:
            sys.stderr.write(annotations(rows))
    else:
        sys.stdout.write(table(shown))
        print(
            f"{counts['links']} links: {counts[OK]} ok, {counts[DEAD]} dead, "
            f"{counts[INCONCLUSIVE]} inconclusive ({counts['from_cache']} from cache, "
            f"{counts['seconds']} s)"
        )
        if in_actions:
            sys.stdout.write(annotations(rows))
    if counts[DEAD]:
        raise Failure(f"{counts[DEAD]} dead link(s)", 1)
