"""The GitHub REST API (``/repos/{owner}/{repo}``), with a token from ``GITHUB_TOKEN``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from kdsurvey.importers.apis import DEFAULT_GITHUB_API
from kdsurvey.importers.httpclient import Http, SourceError

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
                raise SourceError(
                    f"GitHub API: {outcome.error}", None, outcome.attempts, outcome.error_kind
                )
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
