"""How close ``kdsurvey check links`` gets to its concurrency bound (a benchmark, not a test).

``python benchmarks/links.py [URLS] [LATENCY_MS] [HOSTS] [WORKERS] [PER_HOST]`` starts HOSTS HTTP
servers on 127.0.0.1 that answer every request after LATENCY_MS, checks URLS links spread over
them with WORKERS threads (at most PER_HOST per host, no polite delay), then checks the same links
one at a time. The bound is ``URLS * latency / min(WORKERS, HOSTS * PER_HOST)``.
Defaults: 500 URLs, 50 ms, 10 hosts, 32 workers, 4 per host. The servers run in a child process,
as real ones would be elsewhere: in the same process they would compete for the GIL.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from httpfake import FakeServer, Reply  # noqa: E402

from kdsurvey.checks.linkcheck import LinkChecker, Settings  # noqa: E402
from kdsurvey.checks.linkresults import OK  # noqa: E402
from kdsurvey.checks.linktargets import Target  # noqa: E402


def run(urls: list[str], workers: int, per_host: int) -> float:
    checker = LinkChecker(
        Settings(workers=workers, per_host=per_host, delay=0.0, timeout=10, retries=0)
    )
    targets = [Target("url", url, url) for url in urls]
    started = time.perf_counter()
    results = checker.run(targets)
    elapsed = time.perf_counter() - started
    checker.close()
    assert all(r.verdict == OK for r in results.values()), "every link should be ok"
    return elapsed


def serve(hosts: int, latency: float, conn) -> None:
    """In the child: start the servers, send their ports, answer until told to stop."""
    servers = [FakeServer().start() for _ in range(hosts)]
    for server in servers:
        server.prefix("/", lambda request: Reply(200, delay=latency))
    conn.send([server.port for server in servers])
    conn.recv()
    conn.send(max(server.peak for server in servers))
    for server in servers:
        server.close()


def main(argv: list[str]) -> None:
    defaults = [500, 50, 10, 32, 4]
    count, latency_ms, hosts, workers, per_host = [int(a) for a in argv] + defaults[len(argv) :]
    latency = latency_ms / 1000
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=serve, args=(hosts, latency, child)
    )
    process.start()
    try:
        ports = parent.recv()
        urls = [f"http://127.0.0.1:{ports[i % hosts]}/paper/{i}" for i in range(count)]
        concurrency = min(workers, hosts * per_host)
        bound = count * latency / concurrency
        concurrent = run(urls, workers, per_host)
        sequential = run(urls, 1, 1)
        parent.send("stop")
        peak = parent.recv()
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
    print(
        f"{count} URLs, {latency_ms} ms latency, {hosts} hosts, {workers} workers, "
        f"{per_host} per host"
    )
    print(
        f"concurrent: {concurrent:6.2f} s  (bound {bound:.2f} s at concurrency {concurrency}; "
        f"{concurrent / bound:.2f}x the bound; peak {peak} in flight at one host)"
    )
    print(f"sequential: {sequential:6.2f} s  (bound {count * latency:.2f} s)")
    print(f"speed-up:   {sequential / concurrent:6.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
