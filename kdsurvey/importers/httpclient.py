"""HTTP for every client: one ``requests.Session`` with keep-alive, a timeout, and retries with
exponential backoff on 429/5xx and network errors that honour ``Retry-After``.

Clients never raise for HTTP trouble except as :class:`SourceError` (the answer is unknown), so a
check can tell "the service said no" from "the service could not be asked". ``requests`` is
imported when a session is made, so importing this module stays cheap for the command line.
"""

from __future__ import annotations

import email.utils
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

from kdsurvey import __version__

USER_AGENT = f"kdsurvey/{__version__} (catalogue checks; python-requests)"


class SourceError(Exception):
    """A service could not answer (network, rate limit, server error): the result is unknown."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts


@dataclass
class RetryPolicy:
    """How hard to try: timeout per request, retries with backoff, the longest Retry-After honoured.

    ``sleep`` is injectable so that tests run at full speed and can assert the waits.
    """

    timeout: float = 15.0
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
    error_kind: str | None = None  # timeout | dropped | refused | dns | tls | rate-limited | other
    waits: list[float] = field(default_factory=list)


def retryable_status(status: int) -> bool:
    """429 and server errors (but not 501 Not Implemented / 505) are worth another try."""
    return status == 429 or (500 <= status < 600 and status not in (501, 505))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


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

    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", f"TLS error: {_short(exc)}"
    for inner in _chain(exc):
        name = type(inner).__name__
        if isinstance(inner, socket.gaierror) or name == "NameResolutionError":
            return "dns", "host not found"
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
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "other", f"connection failed: {_short(exc)}"
    return "other", _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class Http:
    """A ``requests.Session`` with keep-alive and polite retries, shared by every client."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
        pool: int = 32,
        session: requests.Session | None = None,
    ):
        import requests
        from requests.adapters import HTTPAdapter

        self.policy = policy or RetryPolicy()
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
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

        policy = self.policy
        waits: list[float] = []
        attempts = 0
        while True:
            attempts += 1
            last = attempts > policy.retries
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
            except requests.exceptions.RequestException as exc:
                kind, message = classify_exception(exc)
                if last or kind == "tls":
                    return Outcome(None, attempts, message, kind, waits)
                wait = policy.backoff * 2 ** (attempts - 1)
            else:
                if not retryable_status(response.status_code):
                    return Outcome(response, attempts, waits=waits)
                asked = retry_after(response.headers.get("Retry-After"))
                if asked is not None and asked > policy.max_wait:
                    return Outcome(
                        response,
                        attempts,
                        f"rate limited: Retry-After {asked:.0f} s is over the "
                        f"{policy.max_wait:.0f} s limit",
                        "rate-limited",
                        waits,
                    )
                if last:
                    return Outcome(response, attempts, waits=waits)
                response.close()
                wait = asked if asked is not None else policy.backoff * 2 ** (attempts - 1)
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
            raise SourceError(f"{name}: {outcome.error}", None, outcome.attempts)
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
