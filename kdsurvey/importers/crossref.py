"""Crossref's REST API (``/works/{doi}``) and the DOI handle API (is a DOI registered at all?)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote

from kdsurvey.importers.apis import DEFAULT_CROSSREF_API, DEFAULT_DOI_API
from kdsurvey.importers.httpclient import Http, collapse

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
