"""What ``kdsurvey check links`` checks: the links of the records and of the site's pages, each
classified (web link, arXiv id, DOI, GitHub repository) and merged across the places it appears."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kdsurvey.gitrepo import tracked_files
from kdsurvey.importers.arxiv import arxiv_id_of_url
from kdsurvey.importers.crossref import doi_of_url
from kdsurvey.importers.github import github_repo_of_url
from kdsurvey.records.catalogue import display_path

LINK_FIELDS = ("paper", "arxiv", "doi", "code", "project")


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
    files = tracked_files(site)
    if files is None:
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
