"""Checking links: HTTP probing of web links within per-host limits, and identifiers (arXiv ids,
DOIs, GitHub repositories) through their APIs. See :meth:`LinkChecker.run`.

Checks run on a bounded pool of threads with a per-host limit and a polite delay between requests
to the same host, kept for every request (redirect hops land under the limits of the host they
reach); retries back off on 429/5xx and honour ``Retry-After``, and a 429 pauses its whole host.
Each attempt has a total deadline besides the per-read timeout. Verdicts are ``ok``, ``dead``
(404/410, no such id, a host name that definitely does not exist, redirect loop) and
``inconclusive`` (bot walls, timeouts and server errors after retries, temporary DNS failures,
hosts known to block robots: "unverified"). When most hosts cannot be reached at all the network
is down: :attr:`LinkChecker.network_down` says so, and no link is called dead for it. That is
asked first (:meth:`LinkChecker.probe`: one connection per host, all at once), so an offline run
says so within seconds instead of checking, retrying and reporting every link.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urljoin, urlsplit

from kdsurvey.checks.hosts import HostPolicy, host_policies, policy_for
from kdsurvey.checks.linkresults import DEAD, INCONCLUSIVE, OK, Cache, Result
from kdsurvey.checks.linktargets import Target
from kdsurvey.checks.scheduler import HostGate, Scheduler, Task
from kdsurvey.importers.apis import (
    DEFAULT_ARXIV_API,
    DEFAULT_CROSSREF_API,
    DEFAULT_DOI_API,
    DEFAULT_GITHUB_API,
)
from kdsurvey.importers.arxiv import ARXIV_BATCH, ARXIV_INTERVAL, ArxivClient
from kdsurvey.importers.crossref import CrossrefClient, DoiClient
from kdsurvey.importers.github import GitHubClient
from kdsurvey.importers.httpclient import (
    NETWORK_KINDS,
    Http,
    RetryPolicy,
    SourceError,
    classify_exception,
)

HEAD_REFUSED = frozenset({403, 405, 501})
DEAD_STATUSES = frozenset({404, 410})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
PROBE_TIMEOUT = 5.0  # the longest wait for one probe's connection (or --timeout, if shorter)


@dataclass
class Settings:
    """Everything that shapes a run; tests shrink delays, backoff and timeouts."""

    workers: int = 16
    per_host: int = 2
    delay: float = 0.5
    timeout: float = 15.0
    deadline: float | None = None  # per attempt; None: four times the timeout
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
    policies: dict[str, HostPolicy] = field(default_factory=host_policies)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic  # the host gate's (delays, pauses)


class LinkChecker:
    """Runs the checks of a list of targets; see :func:`LinkChecker.run`."""

    def __init__(self, settings: Settings | None = None):
        self.settings = s = settings or Settings()
        policy = RetryPolicy(
            timeout=s.timeout,
            deadline=s.deadline,
            retries=s.retries,
            backoff=s.backoff,
            max_wait=s.max_retry_after,
            sleep=s.sleep,
        )
        self.gate = HostGate(self._limit, self._delay, s.clock)
        self.http = Http(policy, pool=max(4, s.workers), gate=self.gate)
        self.arxiv = ArxivClient(self.http, s.arxiv_api, s.arxiv_interval, s.arxiv_batch)
        self.crossref = CrossrefClient(self.http, s.crossref_api, s.mailto)
        self.doi = DoiClient(self.http, s.doi_api)
        self.github = GitHubClient(self.http, s.github_api, s.github_token)
        self.peak: Counter[str] = Counter()
        #: Why the last run could not check its links (None: the network was there).
        self.network_down: str | None = None

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
        """Check every target (cached ``ok`` results younger than the TTL are reused).

        When :meth:`probe` finds the network down, no target is checked: each is inconclusive,
        and ``progress`` hears only of the cached ones.
        """
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
        self.network_down = self.probe(pending)
        if self.network_down:
            pending, down = [], pending
            for target in down:
                results[target.cache_key] = Result(
                    INCONCLUSIVE, message="not checked, the network is down"
                )
        tasks = self._tasks(pending)
        lock = threading.Lock()
        scheduler = Scheduler(tasks, gate=self.gate)
        reached: dict[str, bool] = {}  # host -> did any request get an answer from it

        def finish(task: Task, found: dict[str, Result]) -> None:
            nonlocal done
            with lock:
                for target in task.targets:
                    result = found.get(target.cache_key) or Result(
                        INCONCLUSIVE, message="not checked (internal error)"
                    )
                    result.checked_at = result.checked_at or time.time()
                    results[target.cache_key] = result
                    host = task.host
                    if target.kind == "url" and result.final_url:
                        host = urlsplit(result.final_url).netloc.lower() or host
                    answered = result.error_kind not in NETWORK_KINDS
                    reached[host] = reached.get(host, False) or answered
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
        self.network_down = self.network_down or _network_down(reached)  # lost during the run
        if self.network_down:
            for result in results.values():
                if result.error_kind in NETWORK_KINDS and result.verdict == DEAD:
                    result.verdict = INCONCLUSIVE
                    result.message = f"not checked, the network is down ({result.message})"
        return results

    def probe(self, targets: list[Target]) -> str | None:
        """Why the network looks down for ``targets`` (None: it does not): one TCP connection to
        each host that checking them would ask (their proxy's, when one is set), all at once,
        before any request. Offline, the lookups or connections fail within seconds, where the
        checks, with their retries, would take minutes and report each link first."""
        import requests

        endpoints = set()
        for target in targets:
            url = self._asked(target)
            parts = urlsplit(url)
            if target.kind == "url" and self.policy(parts.hostname or "").skip:
                continue  # never requested
            proxy = requests.utils.get_environ_proxies(url).get(parts.scheme)
            parts = urlsplit(proxy) if proxy else parts
            port = parts.port or (443 if parts.scheme == "https" else 80)
            endpoints.add((parts.hostname or "", port))
        endpoints = sorted(endpoints)
        if len(endpoints) < 2:
            return None
        timeout = min(self.settings.timeout, PROBE_TIMEOUT)
        with ThreadPoolExecutor(min(len(endpoints), max(1, self.settings.workers))) as pool:
            reached = dict(
                zip(endpoints, pool.map(partial(_reach, timeout), endpoints), strict=True)
            )
        return _network_down({f"{h}:{p}": ok for (h, p), ok in reached.items()})

    def _asked(self, target: Target) -> str:
        """The URL that checking ``target`` requests first (an identifier's API)."""
        apis = {
            "arxiv": self.settings.arxiv_api,
            "doi": self.settings.crossref_api,
            "github": self.settings.github_api,
        }
        return apis.get(target.kind, target.url)

    def _tasks(self, targets: list[Target]) -> list[Task]:
        tasks: list[Task] = []
        arxiv = [t for t in targets if t.kind == "arxiv"]
        arxiv_host = urlsplit(self.settings.arxiv_api).netloc.lower()
        batch = max(1, self.settings.arxiv_batch)
        for start in range(0, len(arxiv), batch):
            chunk = arxiv[start : start + batch]
            tasks.append(Task(arxiv_host, chunk, partial(self.check_arxiv, chunk)))
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
            tasks.append(Task(host, [target], run))
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
        owned = self.gate.held() is None  # called outside a run: take and give back slots here
        try:
            return self._follow(url, host, policy)
        finally:
            if owned:
                self.gate.release()

    def _follow(self, url: str, host: str, policy: HostPolicy) -> Result:
        method, current = policy.method, url
        hops: list[tuple[int, str]] = []
        visits = Counter([url])
        attempts = 0
        while True:
            self.gate.hold(urlsplit(current).netloc.lower())  # the limits of the host it lands on
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
        kind = outcome.error_kind
        if kind == "dns":  # a definite "no such name", not EAI_AGAIN
            return Result(DEAD, None, current, hops, attempts, outcome.error, error_kind=kind)
        if policy.blocks_robots:
            message = f"unverified: {host} blocks automated checks ({message})"
        return Result(INCONCLUSIVE, None, current, hops, attempts, message, error_kind=kind)

    # identifiers -----------------------------------------------------------------------------

    def check_arxiv(self, targets: list[Target]) -> dict[str, Result]:
        """One batched API request for many ids; ids missing from the answer are asked again once
        (the API sometimes answers an empty feed) before they are called dead."""
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
                results[f"arxiv:{i}"] = _unknown(error)
            else:
                results[f"arxiv:{i}"] = Result(
                    DEAD, 200, attempts=1, message="arXiv API: no paper with this id"
                )
        return results

    def check_doi(self, doi: str) -> Result:
        try:
            work = self.crossref.work(doi)
        except SourceError as exc:
            return _unknown(exc)
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
            return _unknown(exc, f"not in Crossref; {exc.message}")
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
        owner, name = key.split("/", 1)
        try:
            repo = self.github.repo(owner, name)
        except SourceError as exc:
            return _unknown(exc)
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


def _unknown(error: SourceError, message: str | None = None) -> Result:
    return Result(
        INCONCLUSIVE,
        error.status,
        attempts=error.attempts,
        message=message or error.message,
        error_kind=error.kind,
    )


def _network_down(reached: dict[str, bool]) -> str | None:
    """Most hosts (at least two) could not be reached at all, by name or by connection: the
    machine is offline (or its DNS is down), which says nothing about the links."""
    lost = sorted(host for host, answered in reached.items() if not answered)
    if len(lost) >= 2 and 2 * len(lost) > len(reached):
        return (
            f"the network looks down: {len(lost)} of {len(reached)} hosts could not be "
            "reached (name lookups or connections failed); their links are inconclusive"
        )
    return None


def _reach(timeout: float, endpoint: tuple[str, int]) -> bool:
    """Whether a TCP connection to ``(host, port)`` opens, or fails for another reason than the
    network (a lookup that says "no such name" of one host says nothing of the others)."""
    try:
        socket.create_connection(endpoint, timeout=timeout).close()
    except TimeoutError:
        return False
    except OSError as exc:
        return classify_exception(exc)[0] not in NETWORK_KINDS
    return True


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
