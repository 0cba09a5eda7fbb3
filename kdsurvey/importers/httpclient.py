"""HTTP for every client: one ``requests.Session`` with keep-alive, a timeout, and retries with
exponential backoff on 429/5xx and network errors that honour ``Retry-After``, counted and timed
by urllib3's ``Retry``.

Clients never raise for HTTP trouble except as :class:`SourceError` (the answer is unknown), so a
check can tell "the service said no" from "the service could not be asked". ``requests`` is
imported when a session is made, so importing this module stays cheap for the command line.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

from kdsurvey import __version__

USER_AGENT = f"kdsurvey/{__version__} (catalogue checks; python-requests)"


class _PastDeadline(Exception):
    """An attempt's watchdog shut its connection down."""


class SourceError(Exception):
    """A service could not answer (network, rate limit, server error): the result is unknown."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        attempts: int = 0,
        kind: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts
        self.kind = kind  # the network error kind (see Outcome.error_kind), if any


@dataclass
class RetryPolicy:
    """How hard to try: timeout per read, a total deadline per attempt (a server that drips its
    answer byte by byte never trips the per-read timeout), retries with backoff, the longest
    Retry-After honoured. ``deadline`` None is four times the timeout.

    ``sleep`` is injectable so that tests run at full speed and can assert the waits.
    """

    timeout: float = 15.0
    deadline: float | None = None
    retries: int = 2
    backoff: float = 1.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Outcome:
    """What one logical request came to: a response, or an error after the retries."""

    response: requests.Response | None
    attempts: int
    error: str | None = None
    #: timeout | deadline | dropped | refused | unreachable | dns (no such name) |
    #: dns-temporary (EAI_AGAIN and other lookup failures) | tls | rate-limited | other
    error_kind: str | None = None
    waits: list[float] = field(default_factory=list)


#: Statuses worth another try: 429 and server errors, but not 501 Not Implemented or 505.
RETRY_STATUSES = frozenset({429, *range(500, 600)} - {501, 505})


def retries(policy: RetryPolicy):
    """urllib3's :class:`~urllib3.util.Retry` for ``policy``: it counts the attempts, decides
    which statuses are retried, parses ``Retry-After`` (seconds or an HTTP date) and computes
    the backoff (none before the first retry, then ``backoff`` x 2, x 4...). :meth:`Http.request`
    does the waiting itself, through ``policy.sleep``, so that tests can record the waits."""
    from urllib3.util import Retry

    return Retry(
        total=policy.retries,
        allowed_methods=None,  # every method: the checks only read
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff,
        raise_on_status=False,
    )


def retry_after(retry, response) -> float | None:
    """Seconds ``response``'s ``Retry-After`` asks for (urllib3 parses it); None without one, or
    with one that is neither seconds nor a date."""
    from urllib3.exceptions import InvalidHeader

    value = response.headers.get("Retry-After")
    try:
        return retry.parse_retry_after(value) if value else None
    except InvalidHeader:
        return None


#: getaddrinfo's definite "no such name" answers; anything else (EAI_AGAIN: the resolver could not
#: be asked) says nothing about the host.
NO_SUCH_NAME = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)
UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})

#: Error kinds that mean the host could not be reached at all (no HTTP answer).
NETWORK_KINDS = frozenset({"dns", "dns-temporary", "unreachable", "refused", "connect-timeout"})


def _chain(exc: BaseException):
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    stack: list = [exc]
    while stack:
        inner = stack.pop()
        if not isinstance(inner, BaseException) or id(inner) in seen:
            continue
        seen.add(id(inner))
        yield inner
        stack.extend(
            [inner.__cause__, inner.__context__, getattr(inner, "reason", None), *inner.args]
        )


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """``(kind, message)`` for a requests exception, looking through the wrapped causes."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect-timeout", "timed out connecting"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", f"TLS error: {_short(exc)}"
    for inner in _chain(exc):
        name = type(inner).__name__
        if isinstance(inner, socket.gaierror):
            if inner.errno in NO_SUCH_NAME:
                return "dns", "host not found"
            return "dns-temporary", f"host name lookup failed ({_short(inner)})"
        if isinstance(inner, OSError) and inner.errno in UNREACHABLE:
            return "unreachable", f"network unreachable ({_short(inner)})"
        if isinstance(inner, ConnectionRefusedError):
            return "refused", "connection refused"
        if isinstance(inner, ConnectionResetError) or name in (
            "RemoteDisconnected",
            "ProtocolError",
            "IncompleteRead",
            "ChunkedEncodingError",
        ):
            return "dropped", "connection dropped by the server"
        if isinstance(inner, TimeoutError) or name in ("ReadTimeoutError", "ConnectTimeoutError"):
            return "timeout", "timed out"
    if any(type(inner).__name__ == "NameResolutionError" for inner in _chain(exc)):
        return "dns-temporary", "host name lookup failed"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "other", f"connection failed: {_short(exc)}"
    return "other", _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


_WATCH = threading.local()


class _Watchdog:
    """A total deadline for one attempt: when it passes, the attempt's connection is shut down, so
    the read blocked on it fails at once however slowly the server drips its bytes. One daemon
    thread (:class:`_Watchkeeper`) keeps every deadline: no thread is started per request."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = False
        self.done = False
        self.conn = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Watchdog:
        _WATCH.current = self
        _KEEPER.watch(time.monotonic() + self.seconds, self)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.done = True
            self.conn = None
        _WATCH.current = None

    def arm(self, conn) -> None:
        with self._lock:
            self.conn = conn
            fired = self.fired
        if fired:
            _shut(conn)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            conn = self.conn
        if conn is not None:
            _shut(conn)


class _Watchkeeper:
    """Fires the watchdogs whose deadline has passed, from one lazily started daemon thread."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._count = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="http-deadlines", daemon=True
                )
                self._thread.start()

    def watch(self, expires: float, dog: _Watchdog) -> None:
        self.start()
        with self._cond:
            self._count += 1
            heapq.heappush(self._heap, (expires, self._count, dog))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            due = []
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)  # finished in time
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(timeout=wait)
            for dog in due:
                dog.fire()


_KEEPER = _Watchkeeper()


def _shut(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _watched_pools() -> dict:
    """urllib3 pool classes that hand each request's connection to the thread's watchdog."""
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def _make_request(self, conn, *args, **kwargs):
        watch = getattr(_WATCH, "current", None)
        if watch is not None:
            watch.arm(conn)
        return type(self).__mro__[1]._make_request(self, conn, *args, **kwargs)

    return {
        "http": type(
            "WatchedHTTPConnectionPool", (HTTPConnectionPool,), {"_make_request": _make_request}
        ),
        "https": type(
            "WatchedHTTPSConnectionPool", (HTTPSConnectionPool,), {"_make_request": _make_request}
        ),
    }


class Http:
    """A ``requests.Session`` with keep-alive and polite retries, shared by every client."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        pool: int = 32,
        session: requests.Session | None = None,
        gate=None,
    ):
        import requests
        from requests.adapters import HTTPAdapter

        self.policy = policy or RetryPolicy()
        self.gate = gate  # told of a 429's wait, so that the whole host pauses (HostGate.pause)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
            adapter.poolmanager.pool_classes_by_scheme = _watched_pools()
            _KEEPER.start()  # now, not in the first request's time
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        session.headers["User-Agent"] = user_agent
        self.session = session

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        allow_redirects: bool = False,
        stream: bool = False,
        headers: dict | None = None,
        params: dict | None = None,
    ) -> Outcome:
        """One request with retries on 429/5xx and network errors; never raises for HTTP trouble.

        The returned response (if any) is the last one; with ``stream`` the caller closes it.
        """
        import requests
        from urllib3.exceptions import MaxRetryError

        policy = self.policy
        deadline = policy.deadline if policy.deadline is not None else 4 * policy.timeout
        retry = retries(policy)
        waits: list[float] = []
        attempts = 0
        while True:
            attempts += 1
            response = error = asked = None
            try:
                with _Watchdog(deadline) as watch:
                    try:
                        response = self.session.request(
                            method,
                            url,
                            allow_redirects=allow_redirects,
                            stream=stream,
                            headers=headers,
                            params=params,
                            timeout=policy.timeout,
                        )
                    except requests.exceptions.RequestException:
                        if watch.fired:
                            raise _PastDeadline() from None
                        raise
                    if watch.fired:  # cut while the headers dripped: http.client took the
                        response.close()  # end of the stream for the end of the headers
                        raise _PastDeadline()
            except _PastDeadline as exc:  # the cut answer (if any) is no answer
                kind, message = "deadline", f"timed out: no complete answer within {deadline:g} s"
                response, error = None, exc
            except requests.exceptions.RequestException as exc:
                kind, message = classify_exception(exc)
                if kind == "tls":  # a certificate does not get better by asking again
                    return Outcome(None, attempts, message, kind, waits)
                error = exc
            else:
                if not retry.is_retry(
                    method, response.status_code, "Retry-After" in response.headers
                ):
                    return Outcome(response, attempts, waits=waits)
                asked = retry_after(retry, response)
                if asked is not None and asked > policy.max_wait:
                    return Outcome(
                        response,
                        attempts,
                        f"rate limited: Retry-After {asked:.0f} s is over the "
                        f"{policy.max_wait:.0f} s limit",
                        "rate-limited",
                        waits,
                    )
            try:
                retry = retry.increment(
                    method, url, response.raw if response is not None else None, error
                )
            except MaxRetryError:  # out of retries: the last answer, or the last error
                if response is not None:
                    return Outcome(response, attempts, waits=waits)
                return Outcome(None, attempts, message, kind, waits)
            wait = asked if asked is not None else retry.get_backoff_time()
            if response is not None:
                response.close()
                if response.status_code == 429 and self.gate is not None:
                    self.gate.pause(urlsplit(url).netloc.lower(), wait)
            waits.append(wait)
            if wait > 0:
                policy.sleep(wait)

    def get_json(
        self,
        url: str,
        *,
        params: dict | None = None,
        headers: dict | None = None,
        missing: tuple[int, ...] = (404,),
        name: str = "service",
    ):
        """``(status, json, outcome)``; json is None for a ``missing`` status, else SourceError."""
        outcome = self.request("GET", url, params=params, headers=headers, allow_redirects=True)
        response = outcome.response
        if response is None:
            raise SourceError(
                f"{name}: {outcome.error}", None, outcome.attempts, outcome.error_kind
            )
        if response.status_code in missing:
            return response.status_code, None, outcome
        if response.status_code != 200:
            raise SourceError(
                f"{name}: HTTP {response.status_code}", response.status_code, outcome.attempts
            )
        try:
            return 200, response.json(), outcome
        except ValueError:
            raise SourceError(f"{name}: answer is not JSON", 200, outcome.attempts) from None


class Throttle:
    """At most one call every ``interval`` seconds, across threads."""

    def __init__(
        self,
        interval: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.interval = interval
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def wait(self) -> float:
        """Block until the next call may go; returns the seconds waited."""
        with self._lock:
            now, waited = self.clock(), 0.0
            if self._last is not None and self.interval > 0:
                due = self._last + self.interval
                if due > now:
                    waited = due - now
                    self.sleep(waited)
                    now = max(self.clock(), due)  # a fake sleep in tests does not move the clock
            self._last = now
            return waited


def collapse(text: str | None) -> str:
    """Whitespace runs (arXiv wraps titles over lines) to single spaces."""
    return re.sub(r"\s+", " ", text or "").strip()
