"""``kdsurvey check links`` against real HTTP servers on 127.0.0.1 (nothing leaves the machine).

Each server behaviour the issue lists has a test: 200, 301/308 chains, a redirect loop, 404, 410,
429 with Retry-After, 503 then 200, HEAD 405, a slow reply past the timeout, a dropped connection,
and fake arXiv / Crossref / GitHub / DOI handle APIs. Waits go through a recording ``sleep`` so the
retries are asserted without being slept.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from conftest import GOOD, ROOT, git
from httpfake import (
    FakeResolver,
    FakeServer,
    Reply,
    arxiv_api,
    crossref_api,
    doi_handles,
    github_api,
)

from kdsurvey.checks.hosts import HostPolicy, host_policies, policy_for
from kdsurvey.checks.linkcheck import LinkChecker, Settings
from kdsurvey.checks.linkreport import annotations, markdown, summary, table
from kdsurvey.checks.linkresults import DEAD, INCONCLUSIVE, OK, Cache, Result, verdicts
from kdsurvey.checks.linktargets import Source, Target, classify, site_targets, urls_in_text
from kdsurvey.cli import main
from kdsurvey.commands.check import links_exit_code
from kdsurvey.gitrepo import changed_files
from kdsurvey.importers.httpclient import (
    RetryPolicy,
    Throttle,
    classify_exception,
    retries,
    retry_after,
)
from kdsurvey.records.catalogue import load
from kdsurvey.records.reading import read_hosts


class Sleeps(list):
    """A ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def sleeps():
    return Sleeps()


def make(server, sleeps, **overrides) -> LinkChecker:
    options = dict(
        workers=8,
        per_host=8,
        delay=0.0,
        timeout=0.3,
        retries=2,
        backoff=0.5,
        max_retry_after=30.0,
        arxiv_interval=0.0,
        sleep=sleeps,
        arxiv_api=server.url("/api/query"),
        crossref_api=server.url("/crossref"),
        github_api=server.url("/github"),
        doi_api=server.url("/handles"),
    )
    options.update(overrides)
    return LinkChecker(Settings(**options))


def check(server, sleeps, url, **overrides):
    checker = make(server, sleeps, **overrides)
    try:
        return checker.check_url(url)
    finally:
        checker.close()


def methods(server, path):
    return [r.method for r in server.requests_to(path)]


# -- one URL, one behaviour ------------------------------------------------------------------------


def test_200_is_ok_with_one_head(server, sleeps):
    result = check(server, sleeps, server.route("/ok", Reply(200)))
    assert (result.verdict, result.status, result.attempts, result.redirects) == (OK, 200, 1, [])
    assert methods(server, "/ok") == ["HEAD"]
    assert sleeps == []


def test_permanent_redirect_chain_suggests_the_new_url(server, sleeps):
    server.route("/old", Reply.redirect("/older", 301))
    server.route("/older", Reply.redirect(server.url("/new"), 308))
    server.route("/new", Reply(200))
    result = check(server, sleeps, server.url("/old"))
    assert result.verdict == OK and result.final_url == server.url("/new")
    assert result.redirects == [(301, server.url("/older")), (308, server.url("/new"))]
    assert result.suggestion == server.url("/new")
    assert "moved permanently" in result.message


def test_temporary_redirect_is_reported_not_suggested(server, sleeps):
    server.route("/a", Reply.redirect("/b", 301))
    server.route("/b", Reply.redirect("/login", 302))
    server.route("/login", Reply(200))
    result = check(server, sleeps, server.url("/a"))
    assert result.verdict == OK and len(result.redirects) == 2
    assert result.suggestion == server.url("/b")  # only as far as the permanent hops lead
    temporary = check(server, sleeps, server.url("/b"))
    assert temporary.suggestion is None and "redirected to" in temporary.message


def test_redirect_loop_is_dead(server, sleeps):
    server.route("/ping", Reply.redirect("/pong", 302))
    server.route("/pong", Reply.redirect("/ping", 302))
    result = check(server, sleeps, server.url("/ping"))
    assert result.verdict == DEAD and "redirect loop" in result.message
    assert len(server.log) < 10


@pytest.mark.parametrize(("status", "message"), [(404, "not found"), (410, "gone")])
def test_404_and_410_are_dead_after_a_confirming_get(server, sleeps, status, message):
    result = check(server, sleeps, server.route("/x", Reply(status)))
    assert (result.verdict, result.status, result.message) == (DEAD, status, message)
    assert methods(server, "/x") == ["HEAD", "GET"]
    assert sleeps == []  # a 404 is not retried


def test_429_waits_for_retry_after_then_succeeds(server, sleeps):
    server.route("/busy", [Reply(429, {"Retry-After": "7"}), Reply(200)])
    result = check(server, sleeps, server.url("/busy"))
    assert (result.verdict, result.attempts) == (OK, 2)
    assert sleeps == [7.0]


def test_429_with_retry_after_past_the_limit_gives_up_at_once(server, sleeps):
    server.route("/busy", Reply(429, {"Retry-After": "3600"}))
    result = check(server, sleeps, server.url("/busy"))
    assert result.verdict == INCONCLUSIVE and result.attempts == 1
    assert "Retry-After 3600 s" in result.message and sleeps == []


def test_429_every_time_is_inconclusive_after_the_retries(server, sleeps):
    server.route("/busy", Reply(429, {"Retry-After": "1"}))
    result = check(server, sleeps, server.url("/busy"))
    assert (result.verdict, result.status, result.attempts) == (INCONCLUSIVE, 429, 3)
    assert sleeps == [1.0, 1.0]


def test_503_then_200_is_ok_after_one_retry(server, sleeps):
    server.route("/flaky", [Reply(503), Reply(200)])
    result = check(server, sleeps, server.url("/flaky"))
    assert (result.verdict, result.attempts) == (OK, 2)
    assert sleeps == []  # urllib3's Retry: the first retry goes at once


def test_503_every_time_backs_off_exponentially_then_is_inconclusive(server, sleeps):
    server.route("/down", Reply(503))
    result = check(server, sleeps, server.url("/down"), retries=3)
    assert (result.verdict, result.status, result.attempts) == (INCONCLUSIVE, 503, 4)
    assert sleeps == [1.0, 2.0]  # at once, then backoff x 2, x 4 (urllib3's Retry)
    assert "server error" in result.message


def test_head_405_falls_back_to_get(server, sleeps):
    server.route("/nohead", lambda r: Reply(405) if r.method == "HEAD" else Reply(200))
    result = check(server, sleeps, server.url("/nohead"))
    assert (result.verdict, result.status) == (OK, 200)
    assert methods(server, "/nohead") == ["HEAD", "GET"]


def test_403_to_head_and_get_is_an_inconclusive_bot_wall(server, sleeps):
    result = check(server, sleeps, server.route("/wall", Reply(403)))
    assert (result.verdict, result.status) == (INCONCLUSIVE, 403)
    assert "bot wall" in result.message
    assert methods(server, "/wall") == ["HEAD", "GET"]


def test_slow_reply_times_out_after_retries(server, sleeps):
    server.route("/slow", Reply(200, delay=1.5))
    result = check(server, sleeps, server.url("/slow"), timeout=0.2, retries=1)
    # the timeout decided it: had the client waited for the reply, it would be ok
    assert (result.verdict, result.attempts, result.status) == (INCONCLUSIVE, 2, None)
    assert "timed out" in result.message
    assert sleeps == []  # retried at once (urllib3's Retry)


def test_dropped_connection_is_retried_then_inconclusive(server, sleeps):
    server.route("/drop", Reply(drop=True))
    result = check(server, sleeps, server.url("/drop"))
    assert (result.verdict, result.attempts) == (INCONCLUSIVE, 3)
    assert "connection dropped" in result.message
    assert len(server.requests_to("/drop")) == 3


def test_dropped_once_then_ok(server, sleeps):
    server.route("/once", [Reply(drop=True), Reply(200)])
    result = check(server, sleeps, server.url("/once"))
    assert (result.verdict, result.attempts) == (OK, 2)


def test_connection_refused_is_inconclusive(server, sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = check(server, sleeps, f"http://127.0.0.1:{port}/", retries=1)
    assert result.verdict == INCONCLUSIVE and "refused" in result.message


def test_host_not_found_is_recognised_as_dead():
    error = requests.exceptions.ConnectionError(socket.gaierror(-2, "Name or service not known"))
    assert classify_exception(error) == ("dns", "host not found")
    assert classify_exception(requests.exceptions.ReadTimeout("x"))[0] == "timeout"


def test_robot_wall_host_is_unverified_not_dead_and_gets_no_head(server, sleeps):
    server.route("/doc", Reply(403))
    policies = {"127.0.0.1": HostPolicy(blocks_robots=True, method="GET")}
    result = check(server, sleeps, server.url("/doc"), policies=policies)
    assert result.verdict == INCONCLUSIVE and result.message.startswith("unverified")
    assert methods(server, "/doc") == ["GET"]


def test_redirect_to_a_robot_wall_is_unverified(server, sleeps):
    server.route("/go", Reply.redirect(f"http://localhost:{server.port}/wall", 302))
    server.route("/wall", Reply(403))
    policies = {"localhost": HostPolicy(blocks_robots=True)}
    result = check(server, sleeps, server.url("/go"), policies=policies)
    assert result.verdict == INCONCLUSIVE
    assert result.message.startswith("unverified: localhost blocks automated checks")


def test_skipped_host_is_never_requested(server, sleeps):
    policies = {"127.0.0.1": HostPolicy(skip=True)}
    result = check(server, sleeps, server.route("/doc", Reply(200)), policies=policies)
    assert result.verdict == INCONCLUSIVE and "not requested" in result.message
    assert server.log == []


def test_policy_table_covers_known_robot_walls():
    policies = host_policies(read_hosts(ROOT / "papers" / "robot_hosts.yaml", []))
    for host in ("ieeexplore.ieee.org", "dl.acm.org", "www.sciencedirect.com", "link.springer.com"):
        assert policy_for(host, policies).blocks_robots
    assert policy_for("example.org", policies) == HostPolicy()
    assert policy_for("export.arxiv.org", policies).concurrency == 1


def test_a_robot_host_is_one_line_of_data(catalogue_dir, tmp_path):
    hosts = catalogue_dir / "robot_hosts.yaml"
    hosts.write_text("# bot walls\n- ieeexplore.ieee.org\n")
    assert load(catalogue_dir).robot_hosts == ["ieeexplore.ieee.org"]
    hosts.write_text("# bot walls\n- ieeexplore.ieee.org\n- papers.example-publisher.com\n")
    policies = host_policies(load(catalogue_dir).robot_hosts)
    assert policy_for("papers.example-publisher.com", policies).blocks_robots
    hosts.write_text("- ieeexplore.ieee.org\n- Not A Host\n")
    problems: list = []
    assert read_hosts(hosts, problems) == ["ieeexplore.ieee.org"]
    [problem] = problems
    assert (problem.line, problem.field) == (2, "[1]") and "host name" in problem.message


def test_retry_after_seconds_or_http_date():
    """urllib3 parses Retry-After; a value that is neither seconds nor a date is no wait."""
    import email.utils
    from types import SimpleNamespace

    retry = retries(RetryPolicy())

    def asked(value):
        return retry_after(retry, SimpleNamespace(headers={"Retry-After": value}))

    assert asked("12") == 12.0 and asked("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)  # a date, 1 s resolution
    assert 20 <= asked(later) <= 30  # the seconds from now, however slow this machine is
    assert asked("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date past is no wait


# -- identifiers through their APIs ----------------------------------------------------------------

PAPERS = {
    "2203.08679": {
        "title": "Decoupled Knowledge Distillation",
        "version": 2,
        "authors": ["Borui Zhao", "Quan Cui"],
        "published": "2022-03-16T17:59:59Z",
    },
    "1503.02531": {
        "title": "Distilling the Knowledge in a Neural Network",
        "authors": ["Geoffrey Hinton"],
        "published": "2015-03-09T15:44:49Z",
    },
    "cs/0112017": {
        "title": "An old-style id",
        "authors": ["A. Person"],
        "published": "2001-12-10T00:00:00Z",
    },
}


def test_arxiv_ids_are_checked_in_batches_through_the_api(server, sleeps):
    arxiv_api(server, PAPERS)
    checker = make(server, sleeps, arxiv_batch=2)
    ids = ["2203.08679", "1503.02531", "cs/0112017", "2301.99999"]
    targets = [Target("arxiv", i, f"https://arxiv.org/abs/{i}") for i in ids]
    results = checker.run(targets)
    checker.close()
    assert {k: r.verdict for k, r in results.items()} == {
        "arxiv:2203.08679": OK,
        "arxiv:1503.02531": OK,
        "arxiv:cs/0112017": OK,
        "arxiv:2301.99999": DEAD,
    }
    assert "v2: Decoupled Knowledge Distillation" in results["arxiv:2203.08679"].message
    # two batches of two, then the missing id asked once more before it is called dead
    assert sorted(map(len, server.arxiv_batches)) == [1, 2, 2]
    assert ["2301.99999"] in server.arxiv_batches
    assert all(r.method == "GET" for r in server.log)


def test_arxiv_api_is_asked_at_most_once_every_three_seconds(server, sleeps):
    arxiv_api(server, PAPERS)
    clock = [100.0]

    def sleep(seconds):  # a clock that moves only when slept on
        sleeps(seconds)
        clock[0] += seconds

    checker = make(server, sleeps, arxiv_batch=1)
    checker.arxiv.throttle = Throttle(3.0, sleep, lambda: clock[0])
    checker.run([Target("arxiv", i, "") for i in ("2203.08679", "1503.02531", "cs/0112017")])
    checker.close()
    assert len(server.arxiv_batches) == 3
    assert sleeps == [3.0, 3.0]


def test_arxiv_api_down_is_inconclusive(server, sleeps):
    server.route("/api/query", Reply(503))
    checker = make(server, sleeps, retries=1)
    results = checker.run([Target("arxiv", "2203.08679", "")])
    checker.close()
    assert results["arxiv:2203.08679"].verdict == INCONCLUSIVE
    assert "arXiv API: HTTP 503" in results["arxiv:2203.08679"].message


def test_dois_through_crossref_then_the_handle_api(server, sleeps):
    crossref_api(
        server, {"10.1109/CVPR.2022.01165": {"title": ["Decoupled Knowledge Distillation"]}}
    )
    doi_handles(server, {"10.5555/datacite.1"})
    checker = make(server, sleeps)
    results = checker.run(
        [
            Target("doi", d, "")
            for d in ("10.1109/cvpr.2022.01165", "10.5555/datacite.1", "10.1/none")
        ]
    )
    checker.close()
    assert results["doi:10.1109/cvpr.2022.01165"].verdict == OK
    assert "Crossref: Decoupled" in results["doi:10.1109/cvpr.2022.01165"].message
    assert results["doi:10.5555/datacite.1"].verdict == OK
    assert "other than Crossref" in results["doi:10.5555/datacite.1"].message
    assert results["doi:10.1/none"].verdict == DEAD


def test_github_repos_through_the_api_with_the_token(server, sleeps):
    github_api(
        server,
        {
            "megvii-research/mdistiller": {},
            "old/archived": {"archived": True, "pushed_at": "2019-01-02T00:00:00Z"},
            "new-owner/renamed": {},
        },
        moved={"old-owner/renamed": "new-owner/renamed"},
    )
    checker = make(server, sleeps, github_token="t0ken")
    keys = ["megvii-research/mdistiller", "old/archived", "old-owner/renamed", "gone/away"]
    results = checker.run([Target("github", k, f"https://github.com/{k}") for k in keys])
    checker.close()
    ok, archived, moved, gone = (results[f"github:{k}"] for k in keys)
    assert ok.verdict == OK and "last push 2024-05-01" in ok.message
    assert archived.verdict == OK and "archived" in archived.message
    assert "last push 2019-01-02" in archived.message
    assert moved.verdict == OK and moved.suggestion == "https://github.com/new-owner/renamed"
    assert gone.verdict == DEAD
    assert {r.headers.get("authorization") for r in server.log} == {"Bearer t0ken"}


def test_links_are_classified_to_their_apis():
    assert (
        classify("paper", "https://arxiv.org/abs/2203.08679v2", False).cache_key
        == "arxiv:2203.08679"
    )
    assert classify("paper", "https://arxiv.org/pdf/cs/0112017.pdf", False).kind == "arxiv"
    assert (
        classify("paper", "https://doi.org/10.24963/ijcai.2022/235", False).cache_key
        == "doi:10.24963/ijcai.2022/235"
    )
    assert classify("code", "https://github.com/a/b", True).cache_key == "github:a/b"
    assert classify("code", "https://github.com/a/b", False).kind == "url"
    assert classify("code", "https://github.com/a/b/tree/main", True).kind == "url"


# -- a whole run -----------------------------------------------------------------------------------


def test_cache_second_run_requests_nothing_fresh(server, sleeps, tmp_path):
    urls = [server.route(f"/p{i}", Reply(200)) for i in range(5)]
    dead = server.route("/dead", Reply(404))
    targets = [Target("url", u, u) for u in [*urls, dead]]
    path = tmp_path / "links-cache.json"

    cache = Cache(path, ttl=3600)
    checker = make(server, sleeps)
    first = checker.run(targets, cache)
    cache.save()
    assert sum(r.cached for r in first.values()) == 0
    requests_first = len(server.log)

    cache = Cache(path, ttl=3600)
    second = checker.run(targets, cache)
    assert cache.hits == 5
    assert all(second[f"url:{u}"].cached and second[f"url:{u}"].verdict == OK for u in urls)
    assert second[f"url:{dead}"].verdict == DEAD and not second[f"url:{dead}"].cached
    assert [r.path for r in server.log[requests_first:]] == ["/dead", "/dead"]  # only the dead one

    stale = Cache(path, ttl=3600, now=lambda: time.time() + 7200)
    checker.run(targets, stale)
    checker.close()
    assert stale.hits == 0
    assert json.loads(path.read_text())["version"] == 1


def test_unreadable_cache_is_ignored(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    assert Cache(path, 60).entries == {}
    assert "ignoring unreadable cache" in capsys.readouterr().err


def test_per_host_limit_and_polite_delay(sleeps):
    # End to end: every link of two hosts checked, never more than two at a time per host (as the
    # scheduler counted: the fake servers' own counts race with their handler threads' ends).
    with FakeServer() as one, FakeServer() as two:
        urls = []
        for server in (one, two):
            server.prefix("/", lambda r: Reply(200, delay=0.02))
            urls += [server.url(f"/{i}") for i in range(6)]
        checker = LinkChecker(Settings(workers=8, per_host=2, delay=0.01, timeout=5, sleep=sleeps))
        results = checker.run([Target("url", u, u) for u in urls])
        checker.close()
        assert all(r.verdict == OK for r in results.values())
        assert len(results) == 12
        assert len(checker.peak) == 2  # one count per host
        assert max(checker.peak.values()) <= 2
        assert all(len(server.log) == 6 for server in (one, two))


class FakeClock:
    """A clock that moves only when the test moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_scheduler_decides_limit_delay_and_interleaving_on_its_clock():
    """What the scheduler decides, on a clock the test owns: no assertion depends on how fast
    the machine is (the end-to-end test above only checks the outcome)."""
    from kdsurvey.checks.scheduler import Scheduler, Task

    tasks = [Task(host, [], lambda: {}) for host in ["a"] * 3 + ["b"] * 2]
    clock = FakeClock()
    scheduler = Scheduler(tasks, lambda host: 2, lambda host: 0.5, clock)

    def ready() -> bool:
        """Whether take() would hand out a task now (without blocking the test)."""
        with scheduler.cond:
            return any(
                scheduler.active[h] < scheduler.limit(h)
                and scheduler.next_start.get(h, 0.0) <= clock.now
                for h in scheduler.queues
            )

    # t=0: both hosts start at once (host "a" first: it has the most work left)
    first, second = scheduler.take(), scheduler.take()
    assert [first.host, second.host] == ["a", "b"]
    assert not ready()  # each host's next start is 0.5 s away
    clock.now = 0.49
    assert not ready()
    clock.now = 0.5
    third, fourth = scheduler.take(), scheduler.take()
    assert [third.host, fourth.host] == ["a", "b"]
    assert scheduler.peak == {"a": 2, "b": 2}
    # host "b" is done; host "a" has two in flight: its limit holds even after its delay
    clock.now = 5.0
    assert not ready()
    scheduler.done(first)
    assert ready()
    assert scheduler.take().host == "a"
    assert scheduler.take() is None  # no work left
    assert scheduler.next_start == {"a": 5.5, "b": 1.0}


def test_site_pages_links_with_lines(tmp_path):
    page = tmp_path / "index.md"
    page.write_text(
        "# Home\n\nSee [the paper](https://arxiv.org/abs/1503.02531).\n"
        "Code: <https://github.com/a/b>, docs https://kd.example.org/x.\n"
        "Template {{ https://x.org/{{ id }} }} and http://localhost:8000/ and "
        "https://pages.example/y\n"
        "Trailing: https://www.ecva.net/papers.php, done.\n"
    )
    assert list(urls_in_text(page.read_text())) == [
        (3, "https://arxiv.org/abs/1503.02531"),
        (4, "https://github.com/a/b"),
        (6, "https://www.ecva.net/papers.php"),
    ]
    targets = site_targets([page], github_api=True)
    assert [t.cache_key for t in targets] == [
        "arxiv:1503.02531",
        "github:a/b",
        "url:https://www.ecva.net/papers.php",
    ]
    assert targets[0].sources[0].line == 3 and targets[0].sources[0].field == "link"


def test_reports_table_json_annotations_markdown():
    targets = [
        Target("url", "https://a.org/x", "https://a.org/x"),
        Target("url", "https://b.org/y", "https://b.org/y"),
    ]
    targets[0].sources.append(Source("papers/a2020x.yaml", 13, "links.paper", "https://a.org/x"))
    targets[1].sources.append(Source("papers/b2021y.yaml", 15, "links.code", "https://b.org/y"))
    results = {
        "url:https://a.org/x": Result(DEAD, 404, message="not found, 100% sure"),
        "url:https://b.org/y": Result(
            OK, 200, suggestion="https://b.org/z", message="moved permanently (301): use x"
        ),
    }
    rows = verdicts(targets, results)
    assert [r.verdict for r in rows] == [DEAD, OK]
    assert set(rows[0].as_dict()) >= {
        "url",
        "verdict",
        "status",
        "final_url",
        "redirects",
        "attempts",
        "message",
        "source",
        "line",
    }
    assert annotations(rows).splitlines() == [
        "::error file=papers/a2020x.yaml,line=13,title=dead link::links.paper: https://a.org/x: "
        "not found, 100%25 sure",
        "::notice file=papers/b2021y.yaml,line=15,title=link moved::links.code: https://b.org/y: "
        "moved permanently (301): use x",
    ]
    text = table(rows)
    assert "papers/a2020x.yaml:13" in text and text.splitlines()[1].startswith("dead")
    counts = summary(rows)
    assert (counts["dead"], counts["ok"], counts["moved"]) == (1, 1, 1)
    report = markdown(rows, counts)
    assert "## Dead (1)" in report and "<https://a.org/x>" in report and "## Moved (1)" in report


# -- the command -----------------------------------------------------------------------------------


def record_with_links(server) -> str:
    return GOOD.replace(
        '  arxiv: "1503.02531"\n',
        '  arxiv: "1503.02531"\n'
        f"  code: {server.url('/code')}\n"
        f"  project: {server.url('/project')}\n",
    )


def cli_args(server, papers, *extra):
    return [
        "check",
        "links",
        "--papers",
        str(papers),
        "--no-site",
        "--delay",
        "0",
        "--backoff",
        "0",
        "--timeout",
        "1",
        "--arxiv-interval",
        "0",
        "--arxiv-api",
        server.url("/api/query"),
        "--crossref-api",
        server.url("/crossref"),
        "--github-api",
        server.url("/github"),
        "--doi-api",
        server.url("/handles"),
        *extra,
    ]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "KDSURVEY_ARXIV_API", "KDSURVEY_CROSSREF_API"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_command_all_ok_exits_0(server, catalogue_dir, capsys, clean_env):
    arxiv_api(server, PAPERS)
    server.route("/code", Reply(200))
    server.route("/project", Reply.redirect("/project/", 301))
    server.route("/project/", Reply(200))
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record_with_links(server))
    assert main(cli_args(server, catalogue_dir)) == 0
    out, err = capsys.readouterr()
    # the header and the summary count alike: paper + arxiv are one arXiv API check
    assert "4 links, 3 distinct: 4 ok, 0 dead, 0 inconclusive" in out
    assert "moved permanently (301)" in out
    assert "checking 4 link(s), 3 distinct, of 1 record(s)" in err
    assert len(server.arxiv_batches) == 1


def test_command_dead_link_exits_1_with_annotations(server, catalogue_dir, capsys, clean_env):
    arxiv_api(server, PAPERS)
    server.route("/code", Reply(410))
    server.route("/project", Reply(403))
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record_with_links(server))
    clean_env.setenv("GITHUB_ACTIONS", "true")
    assert main(cli_args(server, catalogue_dir, "--format", "json", "-q")) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["summary"]["dead"] == 1 and data["summary"]["inconclusive"] == 1
    dead = next(r for r in data["results"] if r["verdict"] == "dead")
    assert dead["field"] == "links.code" and dead["line"] == 15 and dead["status"] == 410
    assert dead["source"].endswith("hinton2015distilling.yaml")
    assert "::error file=" in captured.err and "hinton2015distilling.yaml,line=15" in captured.err
    assert "::warning file=" in captured.err
    assert "1 dead link(s)" in captured.err


def test_command_inconclusive_only_exits_0(server, catalogue_dir, capsys, clean_env, tmp_path):
    arxiv_api(server, PAPERS)
    server.route("/code", Reply(200, delay=2))
    server.route("/project", Reply(200))
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record_with_links(server))
    report = tmp_path / "report.md"
    assert (
        main(
            cli_args(
                server,
                catalogue_dir,
                "--timeout",
                "0.2",
                "--retries",
                "0",
                "--markdown",
                str(report),
                "--only-problems",
            )
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "inconclusive" in out and "timed out" in out and "/project" not in out
    assert "No dead links." in report.read_text()


def test_command_cache_file(server, catalogue_dir, capsys, clean_env, tmp_path):
    arxiv_api(server, PAPERS)
    server.route("/code", Reply(200))
    server.route("/project", Reply(200))
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record_with_links(server))
    cache = tmp_path / "cache.json"
    assert main(cli_args(server, catalogue_dir, "--cache", str(cache), "-q")) == 0
    seen = len(server.log)
    assert main(cli_args(server, catalogue_dir, "--cache", str(cache), "-q")) == 0
    assert len(server.log) == seen
    assert "(3 from cache" in capsys.readouterr().out


def test_changed_since_checks_only_the_changed_records(server, catalogue_dir, capsys, clean_env):
    arxiv_api(server, PAPERS)
    server.route("/code", Reply(200))
    server.route("/project", Reply(200))
    other = (
        GOOD.replace("hinton2015distilling", "hinton2015other")
        .replace("Distilling the Knowledge", "Other the Knowledge")
        .replace("https://arxiv.org/abs/1503.02531", "https://unreachable.invalid/never")
        .replace('  arxiv: "1503.02531"\n', "")
    )
    (catalogue_dir / "hinton2015other.yaml").write_text(other)
    repo = catalogue_dir.parent
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record_with_links(server))
    assert changed_files("HEAD", [catalogue_dir]) == {
        (catalogue_dir / "hinton2015distilling.yaml").resolve()
    }
    assert main(cli_args(server, catalogue_dir, "--changed-since", "HEAD")) == 0
    out = capsys.readouterr().out
    assert "unreachable.invalid" not in out and "4 links, 3 distinct: 4 ok" in out
    assert main(cli_args(server, catalogue_dir, "--changed-since", "no-such-rev")) == 2


def test_default_endpoints_are_the_public_apis():
    settings = Settings()
    assert settings.arxiv_api == "https://export.arxiv.org/api/query"
    assert settings.crossref_api == "https://api.crossref.org"
    assert settings.github_api == "https://api.github.com"


# -- hostile networks: DNS, tarpits, rate limits, fan-in ------------------------------------------


ELSEWHERE = "http://127.0.0.2:9/api/query"  # never asked


class Clock:
    """A clock that moves only when slept on (``sleep``), recording the sleeps; ``lag`` real
    seconds pass inside each sleep, so other threads get the time to misbehave."""

    def __init__(self, lag: float = 0.0):
        self.now = 1000.0
        self.lag = lag
        self.sleeps = Sleeps()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps(seconds)
        if self.lag:
            time.sleep(self.lag)
        self.now += seconds


@pytest.fixture
def resolver(monkeypatch):
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_temporary_dns_failure_is_not_host_not_found():
    again = requests.exceptions.ConnectionError(
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    )
    kind, message = classify_exception(again)
    assert kind == "dns-temporary" and "host not found" not in message
    none = requests.exceptions.ConnectionError(
        socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    )
    assert classify_exception(none) == ("dns", "host not found")


def test_eai_again_through_the_resolver_is_inconclusive(server, sleeps, resolver):
    resolver.names["flaky-dns.kdsurvey.net"] = socket.EAI_AGAIN
    result = check(server, sleeps, "http://flaky-dns.kdsurvey.net/paper")
    assert result.verdict == INCONCLUSIVE and result.error_kind == "dns-temporary"
    assert "host not found" not in result.message
    assert resolver.asked.count("flaky-dns.kdsurvey.net") == 3  # retried like any network error


def test_tarpit_is_cut_by_the_total_deadline(server, sleeps):
    # 230 header bytes, 50 ms apart: each read is quick, the whole answer takes 11 s
    url = server.route("/tarpit", Reply(200, drip=0.05))
    result = check(server, sleeps, url, timeout=0.5, deadline=0.4, retries=0)
    assert (result.verdict, result.status, result.error_kind) == (INCONCLUSIVE, None, "deadline")
    assert "no complete answer within 0.4 s" in result.message


def test_headers_dripped_past_the_deadline_are_cut_too(server, sleeps):
    """The status line comes at once, then the headers drip: the deadline still ends the attempt
    (it used to leave http.client with half the headers, which it took for all of them: "ok")."""
    url = server.route("/drip", Reply(200, drip=0.05, drip_after=len("HTTP/1.1 200 OK\r\n")))
    result = check(server, sleeps, url, timeout=0.5, deadline=0.4, retries=1)
    assert (result.verdict, result.status, result.error_kind) == (INCONCLUSIVE, None, "deadline")
    assert result.attempts == 2 and "no complete answer within 0.4 s" in result.message


def test_network_down_is_reported_once_and_nothing_is_dead(server, sleeps, resolver):
    urls = [f"http://h{i}.kdsurvey-offline.net/p" for i in range(6)]  # EAI_NONAME, all of them
    checker = make(server, sleeps)
    results = checker.run([Target("url", u, u) for u in urls])
    checker.close()
    assert "6 of 6 hosts could not be reached" in checker.network_down
    assert {r.verdict for r in results.values()} == {INCONCLUSIVE}
    assert all("network is down" in r.message for r in results.values())


def test_network_down_is_known_before_any_request(server, sleeps, resolver):
    """The probe (one connection per host, at once) finds the network down: no request is made,
    no retry slept, no progress reported, every link inconclusive."""
    urls = [f"http://h{i}.kdsurvey-offline.net/p" for i in range(5)]
    server.route("/p", Reply(200))
    urls.append(server.url("/p"))  # one host answers: 5 of 6 lost is still "down"
    heard: list = []
    checker = make(server, sleeps, timeout=30.0)
    results = checker.run([Target("url", u, u) for u in urls], progress=lambda *a: heard.append(a))
    checker.close()
    assert "5 of 6 hosts could not be reached" in checker.network_down
    assert server.log == [] and sleeps == [] and heard == []
    assert {r.verdict for r in results.values()} == {INCONCLUSIVE}
    assert {r.attempts for r in results.values()} == {0}
    assert sorted(set(resolver.asked)) == sorted({f"h{i}.kdsurvey-offline.net" for i in range(5)})


def test_probe_asks_the_apis_and_the_proxy_not_the_identifiers_pages(server, sleeps, resolver):
    checker = make(server, sleeps, arxiv_api="http://export.kdsurvey-offline.net/api/query")
    targets = [
        Target("arxiv", "1503.02531", "https://arxiv.org/abs/1503.02531"),
        Target("url", "u", "http://code.kdsurvey-offline.net/x"),
    ]
    assert "2 of 2 hosts" in checker.probe(targets)
    assert set(resolver.asked) == {"export.kdsurvey-offline.net", "code.kdsurvey-offline.net"}
    resolver.asked.clear()
    with pytest.MonkeyPatch.context() as env:  # every request would go through the proxy
        env.setenv("HTTP_PROXY", server.url())
        env.setenv("NO_PROXY", "")
        assert checker.probe(targets) is None
    checker.close()
    assert resolver.asked == []


def test_one_missing_host_among_answering_ones_is_still_dead(server, sleeps, resolver):
    resolver.names["up.kdsurvey.net"] = "127.0.0.1"
    server.route("/p", Reply(200))
    urls = [f"http://up.kdsurvey.net:{server.port}/p", "http://gone.kdsurvey.net/p"]
    checker = make(server, sleeps)
    results = checker.run([Target("url", u, u) for u in urls])
    checker.close()
    assert checker.network_down is None
    assert results["url:http://gone.kdsurvey.net/p"].verdict == DEAD


def test_command_offline_exits_3_says_so_once(server, catalogue_dir, capsys, clean_env, resolver):
    record = GOOD.replace(
        '  arxiv: "1503.02531"\n',
        '  arxiv: "1503.02531"\n'
        "  code: http://code.kdsurvey-offline.net/x\n"
        "  project: http://project.kdsurvey-offline.net/\n",
    )
    (catalogue_dir / "hinton2015distilling.yaml").write_text(record)
    args = cli_args(server, catalogue_dir, "--format", "json", "-q", "--retries", "0")
    args[args.index("--arxiv-api") + 1] = "http://export.kdsurvey-offline.net/api/query"
    assert main(args) == 3
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["summary"]["dead"] == 0 and data["summary"]["network_down"]
    assert captured.err.count("network looks down") == 1 and "exit 3" in captured.err


def test_429_pauses_the_whole_host(server):
    clock = Clock(lag=0.3)  # the retrying thread "sleeps" 0.3 s of real time
    server.clock = clock
    answered: list[int] = []  # how many requests the server had seen when it sent the 429

    def first_busy(request):
        if not answered:
            answered.append(len(server.log))
            return Reply(429, {"Retry-After": "5"})
        return Reply(200)

    server.route("/p0", first_busy)
    server.prefix("/p", lambda r: Reply(200, delay=0.02))
    urls = [server.url(f"/p{i}") for i in range(12)]
    # (the fake arXiv API elsewhere: the server's own host would get arXiv's one-at-a-time limit)
    checker = make(
        server, clock.sleeps, per_host=3, sleep=clock.sleep, clock=clock, arxiv_api=ELSEWHERE
    )
    results = checker.run([Target("url", u, u) for u in urls])
    checker.close()
    assert all(r.verdict == OK for r in results.values())
    assert clock.sleeps == [5.0] and server.peak <= 3
    # the decisions: after the pause, the gate let nothing through to the host before it ended
    host = f"127.0.0.1:{server.port}"
    pauses = [e for e in checker.gate.events if e[0] == "pause"]
    assert pauses == [("pause", host, 1005.0)]
    after = checker.gate.events[checker.gate.events.index(pauses[0]) + 1 :]
    assert after and all(at >= 1005.0 for _, h, at in after if h == host)
    # and what the server saw: after the 429, only the two requests already let through (the
    # host's other slots) came before the pause was over; without the pause, all 11 others do
    early = [r for r in server.log[answered[0] :] if r.started < 1005.0]
    assert len(early) <= 2 and "/p0" not in [r.path for r in early]


def test_redirect_fan_in_keeps_the_limit_of_the_host_it_lands_on(resolver):
    with FakeServer() as origin, FakeServer() as target:
        target.route("/landing", Reply(200, delay=0.05))
        resolver.names["landing.kdsurvey.net"] = "127.0.0.1"
        landing = f"http://landing.kdsurvey.net:{target.port}/landing"
        origin.prefix("/go", lambda r: Reply.redirect(landing, 302))
        urls = []
        for i in range(30):
            resolver.names[f"s{i}.kdsurvey.net"] = "127.0.0.1"
            urls.append(f"http://s{i}.kdsurvey.net:{origin.port}/go{i}")
        clock = Clock()
        checker = LinkChecker(
            Settings(workers=16, per_host=2, delay=0.0, timeout=2, sleep=clock.sleep)
        )
        results = checker.run([Target("url", u, u) for u in urls])
        checker.close()
    assert all(r.verdict == OK for r in results.values())
    assert len(target.log) == 30
    assert target.peak <= 2
    assert checker.peak[f"landing.kdsurvey.net:{target.port}"] == 2


# -- the fault suite: every kind of trouble, its verdict and the exit code -------------------------


class Faults:
    """What a fault needs: two fake servers, the fake DNS, and a few helpers."""

    def __init__(self, server, other, resolver):
        self.server, self.other, self.resolver = server, other, resolver

    def host(self, name: str, answer: object = "127.0.0.1", port: int | None = None) -> str:
        """``http://name:port``, with ``name`` resolving to ``answer`` (an address or an EAI_*)."""
        self.resolver.names[name] = answer
        return f"http://{name}:{self.server.port if port is None else port}"


FAULTS = []


def fault(verdict: str, code: int | None = None, **settings):
    def register(setup):
        exit_code = (1 if verdict == DEAD else 0) if code is None else code
        name = setup.__name__.replace("_", "-")
        FAULTS.append(pytest.param(setup, verdict, exit_code, settings, id=name))
        return setup

    return register


@fault(OK)
def ok_200(f):
    return [f.server.route("/ok", Reply(200))]


@fault(OK)
def permanent_redirect_chain(f):
    f.server.route("/old", Reply.redirect("/older", 301))
    f.server.route("/older", Reply.redirect("/new", 308))
    f.server.route("/new", Reply(200))
    return [f.server.url("/old")]


@fault(OK)
def temporary_redirect(f):
    f.server.route("/login", Reply(200))
    return [f.server.route("/t", Reply.redirect("/login", 302))]


@fault(DEAD)
def redirect_loop(f):
    f.server.route("/pong", Reply.redirect("/ping", 302))
    return [f.server.route("/ping", Reply.redirect("/pong", 302))]


@fault(DEAD)
def too_many_redirects(f):
    f.server.prefix("/r", lambda r: Reply.redirect(f"/r{int(r.path[2:]) + 1}", 302))
    return [f.server.url("/r0")]


@fault(DEAD)
def not_found_404(f):
    return [f.server.route("/x", Reply(404))]


@fault(DEAD)
def gone_410(f):
    return [f.server.route("/x", Reply(410))]


@fault(OK)
def head_404_but_get_200(f):
    return [f.server.route("/x", lambda r: Reply(404 if r.method == "HEAD" else 200))]


@fault(OK)
def rate_limited_429_then_ok(f):
    return [f.server.route("/busy", [Reply(429, {"Retry-After": "7"}), Reply(200)])]


@fault(INCONCLUSIVE)
def retry_after_past_the_limit(f):
    return [f.server.route("/busy", Reply(429, {"Retry-After": "3600"}))]


@fault(INCONCLUSIVE)
def rate_limited_every_time(f):
    return [f.server.route("/busy", Reply(429, {"Retry-After": "1"}))]


@fault(OK)
def per_host_429_pause(f):
    f.server.route("/p0", [Reply(429, {"Retry-After": "3"}), Reply(200)])
    f.server.prefix("/p", lambda r: Reply(200))
    return [f.server.url(f"/p{i}") for i in range(8)]


@fault(OK)
def server_error_503_then_ok(f):
    return [f.server.route("/flaky", [Reply(503), Reply(200)])]


@fault(INCONCLUSIVE)
def server_error_every_time(f):
    return [f.server.route("/down", Reply(503))]


@fault(INCONCLUSIVE)
def not_implemented_501(f):
    return [f.server.route("/x", Reply(501))]


@fault(OK)
def head_405_falls_back_to_get(f):
    return [f.server.route("/x", lambda r: Reply(405 if r.method == "HEAD" else 200))]


@fault(INCONCLUSIVE)
def bot_wall_403(f):
    return [f.server.route("/wall", Reply(403))]


@fault(INCONCLUSIVE)
def redirect_without_location(f):
    return [f.server.route("/x", Reply(301))]


@fault(INCONCLUSIVE, timeout=0.2)
def slow_past_the_timeout(f):
    return [f.server.route("/slow", Reply(200, delay=1.0))]


@fault(INCONCLUSIVE, timeout=0.5, deadline=0.3, retries=0)
def tarpit_past_the_deadline(f):
    return [f.server.route("/tarpit", Reply(200, drip=0.05))]


@fault(INCONCLUSIVE)
def dropped_every_time(f):
    return [f.server.route("/drop", Reply(drop=True))]


@fault(OK)
def dropped_once(f):
    return [f.server.route("/once", [Reply(drop=True), Reply(200)])]


@fault(INCONCLUSIVE)
def connection_refused(f):
    return [f"http://127.0.0.1:{closed_port()}/"]


@fault(INCONCLUSIVE, policies={"127.0.0.1": HostPolicy(blocks_robots=True, method="GET")})
def robot_wall_host(f):
    return [f.server.route("/doc", Reply(403))]


@fault(INCONCLUSIVE, policies={"walled.kdsurvey.net": HostPolicy(blocks_robots=True)})
def redirect_to_a_robot_wall(f):
    f.server.route("/wall", Reply(403))
    return [f.server.route("/go", Reply.redirect(f.host("walled.kdsurvey.net") + "/wall"))]


@fault(INCONCLUSIVE, policies={"127.0.0.1": HostPolicy(skip=True)})
def skipped_host(f):
    return [f.server.route("/doc", Reply(200))]


@fault(DEAD)
def no_such_host(f):
    return ["http://nxdomain.kdsurvey.net/", f.server.route("/ok", Reply(200))]


@fault(DEAD)
def redirect_to_no_such_host(f):
    f.server.route("/ok", Reply(200))
    return [
        f.server.route("/go", Reply.redirect("http://nxdomain.kdsurvey.net/")),
        f.server.url("/ok"),
    ]


@fault(INCONCLUSIVE)
def dns_temporary_failure_eai_again(f):
    return [f.host("flaky.kdsurvey.net", socket.EAI_AGAIN) + "/", f.server.route("/ok", Reply(200))]


@fault(INCONCLUSIVE, code=3)
def network_down_no_dns(f):
    return [f"http://h{i}.kdsurvey-offline.net/" for i in range(5)]


@fault(INCONCLUSIVE, code=3)
def network_down_dns_temporary(f):
    return [f.host(f"h{i}.kdsurvey.net", socket.EAI_AGAIN) + "/" for i in range(5)]


@fault(INCONCLUSIVE, code=3)
def network_down_connections_refused(f):
    port = closed_port()
    return [f.host(f"h{i}.kdsurvey.net", port=port) + "/" for i in range(5)]


@fault(OK)
def redirect_fan_in(f):
    f.other.route("/landing", Reply(200))
    landing = f"http://landing.kdsurvey.net:{f.other.port}/landing"
    f.resolver.names["landing.kdsurvey.net"] = "127.0.0.1"
    f.server.prefix("/go", lambda r: Reply.redirect(landing, 302))
    return [f.host(f"s{i}.kdsurvey.net") + f"/go{i}" for i in range(10)]


def test_the_fault_suite_has_every_kind():
    assert len(FAULTS) >= 28


@pytest.mark.parametrize(("setup", "verdict", "code", "settings"), FAULTS)
def test_fault(setup, verdict, code, settings, resolver):
    clock = Clock()
    with FakeServer() as server, FakeServer() as other:
        urls = setup(Faults(server, other, resolver))
        checker = make(server, clock.sleeps, sleep=clock.sleep, clock=clock, **settings)
        results = checker.run([Target("url", u, u) for u in urls])
        checker.close()
    counts = {DEAD: sum(r.verdict == DEAD for r in results.values())}
    counts["network_down"] = checker.network_down
    assert results[f"url:{urls[0]}"].verdict == verdict, results[f"url:{urls[0]}"].message
    assert links_exit_code(counts) == code
    assert checker.gate.active.total() == 0  # every slot given back
