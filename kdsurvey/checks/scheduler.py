"""Hands link checks to worker threads within each host's limits (see :class:`Scheduler`), and
admits every request, redirect hops included, through one :class:`HostGate`."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from kdsurvey.checks.linkresults import Result
from kdsurvey.checks.linktargets import Target

#: The longest a waiting thread sleeps before it looks at the clock again (an injected clock moves
#: without notifying anyone).
POLL = 0.05


@dataclass
class Slot:
    """One request slot, at ``host`` (None once given back); a redirect moves it to another host."""

    host: str | None


@dataclass
class Task:
    host: str
    targets: list[Target]
    run: Callable[[], dict[str, Result]]


class HostGate:
    """Per-host admission: at most ``limit(host)`` requests in flight, their starts ``delay(host)``
    apart, and none while the host is paused (a 429's Retry-After pauses the whole host, not one
    link). A thread holds at most one host's slot at a time: a redirect to another host gives the
    old slot back before it waits for the new one, so two threads can never wait on each other.

    ``events`` records the decisions (``enter``, ``pause``) with the clock, for tests.
    """

    def __init__(
        self,
        limit: Callable[[str], int],
        delay: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit, self.delay, self.clock = limit, delay, clock
        self.cond = threading.Condition()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.next_start: dict[str, float] = {}
        self.paused_until: dict[str, float] = {}
        self.events: list[tuple[str, str, float]] = []
        self._local = threading.local()

    # under self.cond ---------------------------------------------------------------------------

    def wait_time(self, host: str, now: float) -> float | None:
        """Seconds until ``host`` admits a request (0: now); None while its slots are all taken."""
        if self.active[host] >= self.limit(host):
            return None
        ready = max(self.next_start.get(host, 0.0), self.paused_until.get(host, 0.0))
        return max(0.0, ready - now)

    def admit(self, host: str, now: float, slot: Slot | None = None) -> Slot:
        """Take a slot at ``host`` (it must be ready): it becomes this thread's slot."""
        self.active[host] += 1
        self.peak[host] = max(self.peak[host], self.active[host])
        self.next_start[host] = now + self.delay(host)
        self.events.append(("enter", host, now))
        if slot is None:
            slot = Slot(host)
        slot.host = host
        self._local.slot = slot
        return slot

    # any thread --------------------------------------------------------------------------------

    def held(self) -> str | None:
        """The host whose slot this thread holds."""
        slot = getattr(self._local, "slot", None)
        return slot.host if slot is not None else None

    def hold(self, host: str) -> None:
        """Before a request to ``host``: keep this thread's slot there (waiting out a pause), or
        give back the slot it holds elsewhere and wait for one at ``host``."""
        slot = getattr(self._local, "slot", None)
        with self.cond:
            if slot is not None and slot.host == host:
                while (left := self.paused_until.get(host, 0.0) - self.clock()) > 0:
                    self.cond.wait(timeout=min(left, POLL))
                return
            if slot is not None:
                self._leave(slot)
            while True:
                now = self.clock()
                wait = self.wait_time(host, now)
                if wait == 0:
                    self.admit(host, now, slot)
                    return
                self.cond.wait(timeout=POLL if wait is None else min(wait, POLL))

    def release(self, slot: Slot | None = None) -> None:
        """Give back ``slot`` (by default this thread's), if it still holds one."""
        slot = slot or getattr(self._local, "slot", None)
        if slot is not None:
            with self.cond:
                self._leave(slot)

    def _leave(self, slot: Slot) -> None:
        if slot.host is not None:
            self.active[slot.host] -= 1
            slot.host = None
            self.cond.notify_all()

    def pause(self, host: str, seconds: float) -> None:
        """No new request to ``host`` for ``seconds`` (from a 429's Retry-After or backoff)."""
        with self.cond:
            until = self.clock() + seconds
            if until > self.paused_until.get(host, 0.0):
                self.paused_until[host] = until
            self.events.append(("pause", host, until))
            self.cond.notify_all()


class Scheduler:
    """Hands tasks to worker threads so that no host has more than its limit in flight, and the
    starts at one host are ``delay`` apart (both kept by the :class:`HostGate`). A busy or paused
    host never blocks a worker: it takes another host's task instead."""

    def __init__(
        self,
        tasks: list[Task],
        limit: Callable[[str], int] | None = None,
        delay: Callable[[str], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        gate: HostGate | None = None,
    ):
        self.queues: dict[str, deque[Task]] = {}
        for task in tasks:
            self.queues.setdefault(task.host, deque()).append(task)
        if gate is None:
            gate = HostGate(limit or (lambda host: 1), delay or (lambda host: 0.0), clock)
        self.gate = gate
        self.slots: dict[int, Slot] = {}  # id(task) -> the slot it holds

    # the gate's state, seen from here
    cond = property(lambda self: self.gate.cond)
    active = property(lambda self: self.gate.active)
    peak = property(lambda self: self.gate.peak)
    next_start = property(lambda self: self.gate.next_start)
    limit = property(lambda self: self.gate.limit)
    delay = property(lambda self: self.gate.delay)
    clock = property(lambda self: self.gate.clock)

    def take(self) -> Task | None:
        gate = self.gate
        with gate.cond:
            while True:
                if not self.queues:
                    return None
                now, wait, best = gate.clock(), None, None
                for host, queue in self.queues.items():
                    ready = gate.wait_time(host, now)
                    if ready is None:
                        continue
                    if ready > 0:
                        wait = ready if wait is None else min(wait, ready)
                        continue
                    # the host with the most work left goes first, so that no host is left
                    # alone (with only its own few slots) at the end of the run
                    if best is None or len(queue) > len(self.queues[best]):
                        best = host
                if best is None:
                    gate.cond.wait(timeout=POLL if wait is None else min(wait, POLL))
                    continue
                queue = self.queues[best]
                task = queue.popleft()
                if not queue:
                    del self.queues[best]
                self.slots[id(task)] = gate.admit(best, now)
                return task

    def done(self, task: Task) -> None:
        """The task is over: it gives back its slot (maybe at another host, where a redirect
        led)."""
        with self.gate.cond:
            slot = self.slots.pop(id(task), None)
        self.gate.release(slot)
