"""Hands link checks to worker threads within each host's limits (see :class:`Scheduler`)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from kdsurvey.checks.linkresults import Result
from kdsurvey.checks.linktargets import Target


@dataclass
class Task:
    host: str
    targets: list[Target]
    run: Callable[[], dict[str, Result]]


class Scheduler:
    """Hands tasks to worker threads so that no host has more than its limit in flight, and the
    starts at one host are ``delay`` apart. A busy host never blocks a worker: it takes another
    host's task instead."""

    def __init__(
        self,
        tasks: list[Task],
        limit: Callable[[str], int],
        delay: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.queues: dict[str, deque[Task]] = {}
        for task in tasks:
            self.queues.setdefault(task.host, deque()).append(task)
        self.limit, self.delay, self.clock = limit, delay, clock
        self.active: Counter[str] = Counter()
        self.next_start: dict[str, float] = {}
        self.cond = threading.Condition()
        self.peak: Counter[str] = Counter()

    def take(self) -> Task | None:
        with self.cond:
            while True:
                if not self.queues:
                    return None
                now, wait, best = self.clock(), None, None
                for host, queue in self.queues.items():
                    if self.active[host] >= self.limit(host):
                        continue
                    ready = self.next_start.get(host, 0.0)
                    if ready > now:
                        wait = ready - now if wait is None else min(wait, ready - now)
                        continue
                    # the host with the most work left goes first, so that no host is left
                    # alone (with only its own few slots) at the end of the run
                    if best is None or len(queue) > len(self.queues[best]):
                        best = host
                if best is None:
                    self.cond.wait(timeout=wait)
                    continue
                queue = self.queues[best]
                task = queue.popleft()
                if not queue:
                    del self.queues[best]
                self.active[best] += 1
                self.peak[best] = max(self.peak[best], self.active[best])
                self.next_start[best] = now + self.delay(best)
                return task

    def done(self, task: Task) -> None:
        with self.cond:
            self.active[task.host] -= 1
            self.cond.notify_all()
