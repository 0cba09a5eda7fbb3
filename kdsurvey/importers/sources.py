"""Clients for the services that know about papers: arXiv API, Crossref, GitHub API, DOI handles.

Every client takes a base URL (tests point them at servers on 127.0.0.1, never at the real hosts)
and shares :class:`Http`: one ``requests.Session`` with keep-alive, a timeout, and retries with
exponential backoff on 429/5xx and network errors that honour ``Retry-After``. ``requests`` is
imported when a client is made, so importing this module stays cheap for the command line.

Used by ``kdsurvey check links`` (:mod:`kdsurvey.checks.links`), ``check metadata --online``
(:mod:`kdsurvey.checks.metadata`) and ``kdsurvey new`` (:mod:`kdsurvey.importers.newpaper`).
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET  # noqa: S405 - arXiv Atom; expat >= 2.4 refuses entity bombs
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import requests

from kdsurvey import __version__

DEFAULT_ARXIV_API = "https://export.arxiv.org/api/query"
DEFAULT_CROSSREF_API = "https://api.crossref.org"
DEFAULT_GITHUB_API = "https://api.github.com"
DEFAULT_DOI_API = "https://doi.org/api/handles"

#: Environment variables that override the default base URLs (options override these).
ENV_ARXIV_API = "KDSURVEY_ARXIV_API"
ENV_CROSSREF_API = "KDSURVEY_CROSSREF_API"
ENV_GITHUB_API = "KDSURVEY_GITHUB_API"
ENV_DOI_API = "KDSURVEY_DOI_API"

USER_AGENT = f"kdsurvey/{__version__} (catalogue checks; python-requests)"

#: arXiv asks API clients for no more than one request every three seconds.
ARXIV_INTERVAL = 3.0
ARXIV_BATCH = 100

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"


def base_url(option: str | None, env: str, default: str) -> str:
    """The base URL to use: the option, else the environment variable, else the public endpoint."""
    return (option or os.environ.get(env) or default).rstrip("/")


#: The services the checks talk to: option name -> (environment variable, public endpoint, what).
APIS = {
    "arxiv": (ENV_ARXIV_API, DEFAULT_ARXIV_API, "arXiv API"),
    "crossref": (ENV_CROSSREF_API, DEFAULT_CROSSREF_API, "Crossref API"),
    "github": (ENV_GITHUB_API, DEFAULT_GITHUB_API, "GitHub API, used when GITHUB_TOKEN is set"),
    "doi": (ENV_DOI_API, DEFAULT_DOI_API, "DOI handle API"),
}


def add_api_options(parser, *apis: str) -> None:
    """``--<api>-api URL`` options, so tests (and mirrors) can point a command elsewhere."""
    for api in apis:
        env, default, what = APIS[api]
        parser.add_argument(
            f"--{api}-api",
            metavar="URL",
            help=f"base URL of the {what} (${env}, default {default})",
        )


def api_base(args, api: str) -> str:
    """The base URL of ``api`` for a command run with ``args`` (see :func:`add_api_options`)."""
    env, default, _ = APIS[api]
    return base_url(getattr(args, f"{api}_api"), env, default)


class SourceError(Exception):
    """A service could not answer (network, rate limit, server error): the result is unknown."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts


@dataclass
class RetryPolicy:
    """How hard to try: timeout per request, retries with backoff, the longest Retry-After honoured.

    ``sleep`` is injectable so that tests run at full speed and can assert the waits.
    """

    timeout: float = 15.0
    retries: int = 2
    backoff: float = 1.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Outcome:
    """What one logical request came to: a response, or an error after the retries."""

    response: requests.Response | None
    attempts: int
    error: str | None = None
    error_kind: str | None = None  # timeout | dropped | refused | dns | tls | rate-limited | other
    waits: list[float] = field(default_factory=list)


def retryable_status(status: int) -> bool:
    """429 and server errors (but not 501 Not Implemented / 505) are worth another try."""
    return status == 429 or (500 <= status < 600 and status not in (501, 505))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _chain(exc: BaseException):
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    stack: list = [exc]
    while stack:
        inner = stack.pop()
        if not isinstance(inner, BaseException) or id(inner) in seen:
            continue
        seen.add(id(inner))
        yield inner
        stack.extend(
            [inner.__cause__, inner.__context__, getattr(inner, "reason", None), *inner.args]
        )


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """``(kind, message)`` for a requests exception, looking through the wrapped causes."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", f"TLS error: {_short(exc)}"
    for inner in _chain(exc):
        name = type(inner).__name__
        if isinstance(inner, socket.gaierror) or name == "NameResolutionError":
            return "dns", "host not found"
        if isinstance(inner, ConnectionRefusedError):
            return "refused", "connection refused"
        if isinstance(inner, ConnectionResetError) or name in (
            "RemoteDisconnected",
            "ProtocolError",
            "IncompleteRead",
            "ChunkedEncodingError",
        ):
            return "dropped", "connection dropped by the server"
        if isinstance(inner, TimeoutError) or name in ("ReadTimeoutError", "ConnectTimeoutError"):
            return "timeout", "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "other", f"connection failed: {_short(exc)}"
    return "other", _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class Http:
    """A ``requests.Session`` with keep-alive and polite retries, shared by every client."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        pool: int = 32,
        session: requests.Session | None = None,
    ):
        import requests
        from requests.adapters import HTTPAdapter

        self.policy = policy or RetryPolicy()
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        session.headers["User-Agent"] = user_agent
        self.session = session

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        allow_redirects: bool = False,
        stream: bool = False,
        headers: dict | None = None,
        params: dict | None = None,
    ) -> Outcome:
        """One request with retries on 429/5xx and network errors; never raises for HTTP trouble.

        The returned response (if any) is the last one; with ``stream`` the caller closes it.
        """
        import requests

        policy = self.policy
        waits: list[float] = []
        attempts = 0
        while True:
            attempts += 1
            last = attempts > policy.retries
            try:
                response = self.session.request(
                    method,
                    url,
                    allow_redirects=allow_redirects,
                    stream=stream,
                    headers=headers,
                    params=params,
                    timeout=policy.timeout,
                )
            except requests.exceptions.RequestException as exc:
                kind, message = classify_exception(exc)
                if last or kind == "tls":
                    return Outcome(None, attempts, message, kind, waits)
                wait = policy.backoff * 2 ** (attempts - 1)
            else:
                if not retryable_status(response.status_code):
                    return Outcome(response, attempts, waits=waits)
                asked = retry_after(response.headers.get("Retry-After"))
                if asked is not None and asked > policy.max_wait:
                    return Outcome(
                        response,
                        attempts,
                        f"rate limited: Retry-After {asked:.0f} s is over the "
                        f"{policy.max_wait:.0f} s limit",
                        "rate-limited",
                        waits,
                    )
                if last:
                    return Outcome(response, attempts, waits=waits)
                response.close()
                wait = asked if asked is not None else policy.backoff * 2 ** (attempts - 1)
            waits.append(wait)
            if wait > 0:
                policy.sleep(wait)

    def get_json(
        self,
        url: str,
        *,
        params: dict | None = None,
        headers: dict | None = None,
        missing: tuple[int, ...] = (404,),
        name: str = "service",
    ):
        """``(status, json, outcome)``; json is None for a ``missing`` status, else SourceError."""
        outcome = self.request("GET", url, params=params, headers=headers, allow_redirects=True)
        response = outcome.response
        if response is None:
            raise SourceError(f"{name}: {outcome.error}", None, outcome.attempts)
        if response.status_code in missing:
            return response.status_code, None, outcome
        if response.status_code != 200:
            raise SourceError(
                f"{name}: HTTP {response.status_code}", response.status_code, outcome.attempts
            )
        try:
            return 200, response.json(), outcome
        except ValueError:
            raise SourceError(f"{name}: answer is not JSON", 200, outcome.attempts) from None


class Throttle:
    """At most one call every ``interval`` seconds, across threads."""

    def __init__(
        self,
        interval: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.interval = interval
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def wait(self) -> float:
        """Block until the next call may go; returns the seconds waited."""
        with self._lock:
            now, waited = self.clock(), 0.0
            if self._last is not None and self.interval > 0:
                due = self._last + self.interval
                if due > now:
                    waited = due - now
                    self.sleep(waited)
                    now = max(self.clock(), due)  # a fake sleep in tests does not move the clock
            self._last = now
            return waited


def collapse(text: str | None) -> str:
    """Whitespace runs (arXiv wraps titles over lines) to single spaces."""
    return re.sub(r"\s+", " ", text or "").strip()


# -- arXiv -----------------------------------------------------------------------------------------

ARXIV_ID_IN_URL = re.compile(
    r"^https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?/?$"
)


def arxiv_id_of_url(url: str) -> str | None:
    """``2203.08679`` for ``https://arxiv.org/abs/2203.08679v2`` (abs or pdf links), else None."""
    match = ARXIV_ID_IN_URL.match(url.strip())
    return match.group("id") if match else None


@dataclass(frozen=True)
class ArxivEntry:
    """One paper as the arXiv API describes it (latest version)."""

    id: str
    version: int
    title: str
    authors: tuple[str, ...]  # "Given Family", as arXiv writes them
    published: str  # ISO date of v1
    updated: str
    doi: str | None = None
    journal_ref: str | None = None
    primary_category: str | None = None

    @property
    def year(self) -> int:
        return int(self.published[:4])

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"


def parse_arxiv_feed(text: str | bytes) -> tuple[dict[str, ArxivEntry], list[str]]:
    """Entries of an arXiv API Atom feed by id, and the API's error messages (if any)."""
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise SourceError(f"arXiv API: unreadable answer ({exc})") from None
    entries: dict[str, ArxivEntry] = {}
    errors: list[str] = []
    for entry in root.iter(f"{ATOM}entry"):
        raw_id = collapse(entry.findtext(f"{ATOM}id"))
        if "/api/errors" in raw_id:
            errors.append(collapse(entry.findtext(f"{ATOM}summary")) or raw_id)
            continue
        match = re.search(r"arxiv\.org/abs/(.+?)(?:v(\d+))?$", raw_id)
        title = collapse(entry.findtext(f"{ATOM}title"))
        if not match or not title:
            continue  # arXiv answers an empty entry for an id it does not have
        primary = entry.find(f"{ARXIV_NS}primary_category")
        entries[match.group(1)] = ArxivEntry(
            id=match.group(1),
            version=int(match.group(2) or 1),
            title=title,
            authors=tuple(collapse(a.findtext(f"{ATOM}name")) for a in entry.iter(f"{ATOM}author")),
            published=collapse(entry.findtext(f"{ATOM}published")),
            updated=collapse(entry.findtext(f"{ATOM}updated")),
            doi=collapse(entry.findtext(f"{ARXIV_NS}doi")) or None,
            journal_ref=collapse(entry.findtext(f"{ARXIV_NS}journal_ref")) or None,
            primary_category=primary.get("term") if primary is not None else None,
        )
    return entries, errors


class ArxivClient:
    """The arXiv API (``/api/query?id_list=...``): batched id lists, one request every 3 s."""

    def __init__(
        self,
        http: Http,
        base: str = DEFAULT_ARXIV_API,
        interval: float = ARXIV_INTERVAL,
        batch: int = ARXIV_BATCH,
    ):
        self.http = http
        self.base = base
        self.batch = max(1, batch)
        self.throttle = Throttle(interval, http.policy.sleep)
        self.requests = 0

    def fetch(self, ids: Iterable[str]) -> dict[str, ArxivEntry]:
        """The entries of ``ids`` that arXiv has; ids it does not know are absent.

        Raises :class:`SourceError` when the API cannot be read.
        """
        ids = list(dict.fromkeys(ids))
        found: dict[str, ArxivEntry] = {}
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            found.update(self._query(chunk))
        return found

    def _query(self, ids: list[str]) -> dict[str, ArxivEntry]:
        self.throttle.wait()
        self.requests += 1
        params = {"id_list": ",".join(ids), "max_results": str(len(ids)), "start": "0"}
        outcome = self.http.request("GET", self.base, params=params, allow_redirects=True)
        response = outcome.response
        if response is None:
            raise SourceError(f"arXiv API: {outcome.error}", None, outcome.attempts)
        if response.status_code != 200:
            raise SourceError(
                f"arXiv API: HTTP {response.status_code}", response.status_code, outcome.attempts
            )
        entries, errors = parse_arxiv_feed(response.content)
        if errors and not entries:
            raise SourceError(f"arXiv API: {errors[0]}", 200, outcome.attempts)
        wanted = set(ids)
        return {key: value for key, value in entries.items() if key in wanted}


# -- Crossref and DOI handles ----------------------------------------------------------------------

DOI_IN_URL = re.compile(r"^https?://(?:dx\.)?doi\.org/(?P<doi>10\.\d{4,9}/\S+)$", re.IGNORECASE)


def doi_of_url(url: str) -> str | None:
    """``10.1109/x`` for ``https://doi.org/10.1109/x``, else None."""
    match = DOI_IN_URL.match(url.strip())
    return match.group("doi") if match else None


@dataclass(frozen=True)
class CrossrefWork:
    """The fields of a Crossref work that the checks compare with a record."""

    doi: str
    title: str
    authors: tuple[tuple[str, str], ...]  # (family, given)
    year: int | None  # the earliest of print and online publication ("issued")
    print_year: int | None
    container: str | None
    type: str | None


def _year(parts: dict | None) -> int | None:
    try:
        return int(parts["date-parts"][0][0])
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def parse_crossref_work(message: dict) -> CrossrefWork:
    titles = message.get("title") or [""]
    containers = message.get("container-title") or [None]
    authors = tuple(
        (collapse(a.get("family") or a.get("name")), collapse(a.get("given")))
        for a in message.get("author") or []
    )
    return CrossrefWork(
        doi=message.get("DOI", ""),
        title=collapse(titles[0]),
        authors=authors,
        year=_year(message.get("issued")),
        print_year=_year(message.get("published-print")),
        container=containers[0],
        type=message.get("type"),
    )


class CrossrefClient:
    """Crossref's REST API (``/works/{doi}``); ``mailto`` joins the polite pool."""

    def __init__(self, http: Http, base: str = DEFAULT_CROSSREF_API, mailto: str | None = None):
        self.http = http
        self.base = base
        self.mailto = mailto or os.environ.get("KDSURVEY_MAILTO")

    def work(self, doi: str) -> CrossrefWork | None:
        """The work, or None when Crossref does not have the DOI (it may be another agency's)."""
        params = {"mailto": self.mailto} if self.mailto else None
        _, data, _ = self.http.get_json(
            f"{self.base}/works/{quote(doi, safe='/')}", params=params, name="Crossref"
        )
        if data is None:
            return None
        return parse_crossref_work(data.get("message") or {})


class DoiClient:
    """The DOI handle API (``doi.org/api/handles/{doi}``): is a DOI registered at all?"""

    def __init__(self, http: Http, base: str = DEFAULT_DOI_API):
        self.http = http
        self.base = base

    def exists(self, doi: str) -> bool:
        status, data, _ = self.http.get_json(
            f"{self.base}/{quote(doi, safe='/')}", name="DOI handle API"
        )
        if data is None:
            return False
        return data.get("responseCode") == 1 and status == 200


# -- GitHub ----------------------------------------------------------------------------------------

GITHUB_REPO_URL = re.compile(
    r"^https?://(?:www\.)?github\.com/(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)"
    r"(?:\.git)?/?$"
)


def github_repo_of_url(url: str) -> tuple[str, str] | None:
    """``(owner, repo)`` for a repository's home URL, else None."""
    match = GITHUB_REPO_URL.match(url.strip())
    return (match.group("owner"), match.group("repo")) if match else None


@dataclass(frozen=True)
class GitHubRepo:
    full_name: str
    html_url: str
    archived: bool
    disabled: bool
    pushed_at: str | None
    moved: bool  # the requested owner/name redirects here


class GitHubClient:
    """The GitHub REST API (``/repos/{owner}/{repo}``), with a token from ``GITHUB_TOKEN``."""

    def __init__(self, http: Http, base: str = DEFAULT_GITHUB_API, token: str | None = None):
        self.http = http
        self.base = base
        self.token = token

    def repo(self, owner: str, name: str) -> GitHubRepo | None:
        """The repository, or None when it does not exist (or is private)."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base}/repos/{owner}/{name}"
        for _ in range(2):
            outcome = self.http.request("GET", url, headers=headers, allow_redirects=True)
            response = outcome.response
            if response is None:
                raise SourceError(f"GitHub API: {outcome.error}", None, outcome.attempts)
            if response.status_code == 403 and response.headers.get("X-RateLimit-Remaining") == "0":
                reset = float(response.headers.get("X-RateLimit-Reset") or 0)
                wait = max(0.0, reset - time.time())
                if wait > self.http.policy.max_wait:
                    raise SourceError(
                        "GitHub API: rate limit exhausted until "
                        + datetime.fromtimestamp(reset, timezone.utc).isoformat(),
                        403,
                        outcome.attempts,
                    )
                self.http.policy.sleep(wait)
                continue
            break
        if response.status_code in (404, 451):
            return None
        if response.status_code != 200:
            raise SourceError(
                f"GitHub API: HTTP {response.status_code}", response.status_code, outcome.attempts
            )
        data = response.json()
        full_name = data.get("full_name") or f"{owner}/{name}"
        return GitHubRepo(
            full_name=full_name,
            html_url=data.get("html_url") or f"https://github.com/{full_name}",
            archived=bool(data.get("archived")),
            disabled=bool(data.get("disabled")),
            pushed_at=data.get("pushed_at"),
            moved=bool(response.history) or full_name.lower() != f"{owner}/{name}".lower(),
        )
