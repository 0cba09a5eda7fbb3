"""How the link checker treats each host: requests in flight, delay, robot walls.

The hosts that block robots whatever the URL are data (``papers/robot_hosts.yaml``, read by
:func:`kdsurvey.records.datafiles.read_hosts`), so a curator who meets another adds one line there;
the hosts whose limits follow from their APIs' rules stay here, next to the clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kdsurvey.importers.arxiv import ARXIV_INTERVAL


@dataclass(frozen=True)
class HostPolicy:
    """How to treat one host. ``None`` fields take the command's defaults (--per-host, --delay)."""

    concurrency: int | None = None
    delay: float | None = None
    blocks_robots: bool = False  # refusals, timeouts and 5xx are "unverified", not failures
    method: str = "HEAD"  # first method to try; GET for hosts that mishandle HEAD
    skip: bool = False  # never request; always "unverified"


#: What a robot wall gets: one request at a time, slowly, with GET (HEAD is refused anyway).
ROBOT_WALL = HostPolicy(concurrency=1, delay=2.0, blocks_robots=True, method="GET")

#: Hosts whose limits the services set (arXiv's 3 s rule, GitHub's abuse limits...).
SERVICE_POLICIES: dict[str, HostPolicy] = {
    "arxiv.org": HostPolicy(concurrency=1, delay=ARXIV_INTERVAL),
    "export.arxiv.org": HostPolicy(concurrency=1, delay=0.0),  # the client throttles itself
    "api.crossref.org": HostPolicy(concurrency=4, delay=0.05),
    "api.github.com": HostPolicy(concurrency=4, delay=0.0),
    "github.com": HostPolicy(concurrency=2, delay=1.0),
    "doi.org": HostPolicy(concurrency=2, delay=0.2),
    "openreview.net": HostPolicy(concurrency=1, delay=1.0, method="GET"),
}


def host_policies(robot_hosts: Iterable[str] = ()) -> dict[str, HostPolicy]:
    """The policy table: :data:`ROBOT_WALL` for each of ``robot_hosts``, then the services'."""
    return {**{host.lower(): ROBOT_WALL for host in robot_hosts}, **SERVICE_POLICIES}


def policy_for(host: str, policies: dict[str, HostPolicy]) -> HostPolicy:
    """The policy of a host name (or of the nearest parent domain that has one)."""
    name = host.lower().rsplit("@", 1)[-1].split(":", 1)[0]
    while name:
        if name in policies:
            return policies[name]
        name = name.partition(".")[2]
    return HostPolicy()
