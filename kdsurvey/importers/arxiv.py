"""The arXiv API (``/api/query?id_list=...``): batched id lists, one request every 3 s."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - arXiv Atom; expat >= 2.4 refuses entity bombs
from collections.abc import Iterable
from dataclasses import dataclass

from kdsurvey.importers.apis import DEFAULT_ARXIV_API
from kdsurvey.importers.httpclient import Http, SourceError, Throttle, collapse

#: arXiv asks API clients for no more than one request every three seconds.
ARXIV_INTERVAL = 3.0
ARXIV_BATCH = 100

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"

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
            raise SourceError(
                f"arXiv API: {outcome.error}", None, outcome.attempts, outcome.error_kind
            )
        if response.status_code != 200:
            raise SourceError(
                f"arXiv API: HTTP {response.status_code}", response.status_code, outcome.attempts
            )
        entries, errors = parse_arxiv_feed(response.content)
        if errors and not entries:
            raise SourceError(f"arXiv API: {errors[0]}", 200, outcome.attempts)
        wanted = set(ids)
        return {key: value for key, value in entries.items() if key in wanted}
