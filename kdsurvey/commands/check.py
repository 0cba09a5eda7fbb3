"""``kdsurvey check links`` and ``kdsurvey check metadata``: checks beyond validation.

The checks live in :mod:`kdsurvey.checks`; this module turns options into their settings and
their results into reports and exit codes (only dead links and metadata errors fail).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from kdsurvey import problems
from kdsurvey.checks.hosts import host_policies
from kdsurvey.checks.linkcheck import LinkChecker, Settings
from kdsurvey.checks.linkreport import annotations, markdown, summary, table
from kdsurvey.checks.linkresults import DEAD, INCONCLUSIVE, OK, Cache, verdicts
from kdsurvey.checks.linktargets import merge, record_targets, site_files, site_targets
from kdsurvey.checks.metadata import check
from kdsurvey.checks.online import check_online
from kdsurvey.commands.common import (
    FORMAT,
    PAPERS,
    Failure,
    add_timeout,
    command,
    group,
    load_catalogue,
)
from kdsurvey.files import write_atomic
from kdsurvey.gitrepo import GitError, changed_files
from kdsurvey.importers.apis import add_api_options, api_base
from kdsurvey.importers.arxiv import ARXIV_INTERVAL, ArxivClient
from kdsurvey.importers.crossref import CrossrefClient
from kdsurvey.importers.httpclient import Http, RetryPolicy
from kdsurvey.problems import ERROR, WARNING
from kdsurvey.records import unknowns

LINKS_HELP = "check every link of the records (and of the site's pages): ok, dead or inconclusive"
#: ``check links``' exit code when most hosts could not be reached: nothing is known.
NETWORK_DOWN = 3
LINKS_EPILOG = f"""exit codes:
  0  no dead link (inconclusive ones are warnings)
  1  dead links (404/410, no such id, a host name that does not exist, redirect loop)
  2  bad usage
  {NETWORK_DOWN}  the network (or DNS) is down: most hosts could not be reached, every link
     of theirs is inconclusive; nothing was found dead or alive, try again later"""
METADATA_HELP = (
    "check the records beyond the schema: years, venues, links, duplicates, names, casing"
)

# -- links -----------------------------------------------------------------------------------------


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``7d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 12h, 7d)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * unit


def _links_arguments(p) -> None:
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
        default="kdsurvey/website/docs",
        metavar="DIR",
        help="also check the links of the site's hand-written pages "
        "(default: kdsurvey/website/docs)",
    )
    p.add_argument("--no-site", action="store_true", help="check the records only")
    p.add_argument("--workers", type=int, default=16, help="checks in flight (default 16)")
    p.add_argument(
        "--per-host", type=int, default=2, help="requests in flight per host (default 2)"
    )
    p.add_argument(
        "--delay",
        type=float,
        default=0.5,
        metavar="S",
        help="polite delay between requests to one host (default 0.5 s)",
    )
    add_timeout(p, "a server")
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="S",
        help="longest time one attempt may take in all, however slowly the server answers "
        "(default: four times --timeout)",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="retries on 429/5xx/network errors (default 2)"
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="backoff factor of urllib3's Retry: the first retry goes at once, the next ones wait "
        "2x, 4x... this (default 1 s)",
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


def settings_from(args, robot_hosts=()) -> Settings:
    return Settings(
        workers=max(1, args.workers),
        per_host=max(1, args.per_host),
        delay=max(0.0, args.delay),
        timeout=args.timeout,
        deadline=args.deadline,
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
        policies=host_policies(robot_hosts),
    )


def links(args) -> None:
    """``kdsurvey check links``."""
    catalogue = load_catalogue(args)
    settings = settings_from(args, catalogue.robot_hosts)
    github_api = bool(settings.github_token)
    site = None if args.no_site or not args.site else Path(args.site)
    pages = site_files(site) if site else []
    papers = catalogue.papers
    if args.changed_since:
        try:
            changed = changed_files(
                args.changed_since, [Path(args.papers)] + ([site] if site else [])
            )
        except GitError as exc:
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

    places = sum(len(t.sources) for t in targets)
    if not args.quiet:
        scope = f"{len(papers)} record(s)" + (f", {len(pages)} site page(s)" if site else "")
        print(
            f"checking {places} link(s), {len(targets)} distinct, of {scope}",
            file=sys.stderr,
            flush=True,
        )
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
    if checker.network_down:
        counts["network_down"] = checker.network_down
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
            f"{counts['links']} links, {len(targets)} distinct: {counts[OK]} ok, {counts[DEAD]} dead, "
            f"{counts[INCONCLUSIVE]} inconclusive ({counts['from_cache']} from cache, "
            f"{counts['seconds']} s)"
        )
        if in_actions:
            sys.stdout.write(annotations(rows))
    code = links_exit_code(counts)
    if code == NETWORK_DOWN:
        raise Failure(f"{checker.network_down} (exit {NETWORK_DOWN}: try again later)", code)
    if code:
        raise Failure(f"{counts[DEAD]} dead link(s)", code)


def links_exit_code(counts: dict) -> int:
    """0: no dead link; 1: dead links; 3: the network was down, nothing is known (that wins:
    a link called dead while most hosts could not be reached is not to be trusted)."""
    if counts.get("network_down"):
        return NETWORK_DOWN
    return 1 if counts[DEAD] else 0


# -- metadata --------------------------------------------------------------------------------------


def _metadata_arguments(p) -> None:
    p.add_argument(
        "--online",
        action="store_true",
        help="also compare title, authors, year and the primary arXiv class with the arXiv API "
        "and Crossref",
    )
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--changed-since", metavar="REV", help="check only records changed since REV")
    p.add_argument(
        "--arxiv-interval",
        type=float,
        default=ARXIV_INTERVAL,
        metavar="S",
        help="seconds between arXiv API requests (default 3)",
    )
    add_timeout(p, "an API")
    add_api_options(p, "arxiv", "crossref")


def metadata(args) -> None:
    """``kdsurvey check metadata``."""
    catalogue = load_catalogue(args)
    papers = catalogue.papers
    if args.changed_since:
        try:
            changed = changed_files(args.changed_since, [Path(args.papers)])
        except GitError as exc:
            raise Failure(f"--changed-since {args.changed_since}: {exc}", 2) from None
        papers = [p for p in papers if catalogue.path_of(p).resolve() in changed]
    findings = check(catalogue, papers)
    if args.online:
        http = Http(RetryPolicy(timeout=args.timeout))
        try:
            arxiv = ArxivClient(
                http,
                api_base(args, "arxiv"),
                interval=max(0.0, args.arxiv_interval),
            )
            crossref = CrossrefClient(http, api_base(args, "crossref"))
            findings = sorted(findings + check_online(catalogue, papers, arxiv, crossref))
        finally:
            http.close()
    errors = [f for f in findings if f.severity == ERROR or args.strict]
    warnings = [f for f in findings if f not in errors]
    unconfirmed = unknowns.count(findings)
    if args.format == "json":
        report = problems.as_json(errors, warnings, records=len(papers))
        report["unconfirmed"] = unconfirmed
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(problems.text(findings))
        print(
            f"{len(papers)} records: {len(errors)} error(s), {len(warnings)} warning(s), "
            f"{unconfirmed} unconfirmed field(s)"
        )
    if os.environ.get("GITHUB_ACTIONS") == "true":
        out = sys.stderr if args.format == "json" else sys.stdout
        for finding in findings:
            out.write(problems.annotation(finding, ERROR if finding in errors else WARNING))
    if errors:
        raise Failure(f"{len(errors)} metadata error(s)", 1)


def register(subparsers) -> None:
    checks = group(subparsers, "check", "checks beyond validation: dead links, metadata")
    links_parser = command(checks, "links", links, LINKS_HELP, (PAPERS, FORMAT))
    links_parser.epilog = LINKS_EPILOG
    links_parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _links_arguments(links_parser)
    _metadata_arguments(command(checks, "metadata", metadata, METADATA_HELP, (PAPERS, FORMAT)))
