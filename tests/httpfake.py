"""Real HTTP servers on 127.0.0.1 for the link and metadata checks: no test reaches the internet.

A :class:`FakeServer` answers by path with a :class:`Reply` (status, headers, body, a delay before
answering, a dropped connection, or a tarpit that drips its status line and headers byte by byte),
a list of replies (one per request, the last one repeating) or
a function of the request. It logs every request with its start time and tracks how many were in
flight at once (``peak``). ``clock`` (time.monotonic unless a test injects one) stamps the log.
:class:`FakeResolver` answers host-name lookups instead of the DNS. ``arxiv_api``, ``crossref_api``, ``github_api`` and ``doi_handles`` build fake
services that speak the same formats as the real ones.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape


@dataclass
class Reply:
    status: int = 200
    headers: dict = field(default_factory=dict)
    body: bytes | str = b""
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without answering
    drip: float = 0.0  # a tarpit: seconds between the bytes of the status line and headers
    drip_after: int = 0  # bytes the tarpit sends at once before dripping (the status line: 17)

    @classmethod
    def json(cls, data, status: int = 200, **headers) -> Reply:
        return cls(status, {"Content-Type": "application/json", **headers}, json.dumps(data))

    @classmethod
    def redirect(cls, location: str, status: int = 301) -> Reply:
        return cls(status, {"Location": location})


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    started: float


class FakeServer:
    """``with FakeServer() as server: server.route("/a", Reply(404)); server.url("/a")``."""

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.prefixes: dict[str, object] = {}
        self.log: list[Request] = []
        self.counts: dict[str, int] = {}
        self.inflight = 0
        self.peak = 0
        self.clock: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    # lifecycle
    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base + path

    # routes
    def route(self, path: str, answer) -> str:
        """Answer ``path`` with a Reply, a list of Replies (in turn) or ``f(request) -> Reply``."""
        self.routes[path] = answer
        return self.url(path)

    def prefix(self, prefix: str, answer: Callable[[Request], Reply]) -> None:
        self.prefixes[prefix] = answer

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    def _answer(self, request: Request) -> Reply:
        answer = self.routes.get(request.path)
        if answer is None:
            for prefix in sorted(self.prefixes, key=len, reverse=True):
                if request.path.startswith(prefix):
                    answer = self.prefixes[prefix]
                    break
        if answer is None:
            return Reply(404, body="no route")
        if isinstance(answer, Reply):
            return answer
        if isinstance(answer, list):
            with self._lock:
                index = self.counts.get(request.path, 0)
                self.counts[request.path] = index + 1
            return answer[min(index, len(answer) - 1)]
        return answer(request)


def _handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, *args):  # quiet
            pass

        def _serve(self):
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                server.clock(),
            )
            with server._lock:
                server.log.append(request)
                server.inflight += 1
                server.peak = max(server.peak, server.inflight)
            try:
                reply = server._answer(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.drip:
                    self.close_connection = True
                    head = f"HTTP/1.1 {reply.status} OK\r\n" + "".join(
                        f"{name}: {value}\r\n" for name, value in reply.headers.items()
                    )
                    head += "X-Tarpit: " + "x" * 200 + "\r\n\r\n"
                    data = head.encode()
                    try:
                        self.wfile.write(data[: reply.drip_after])
                        for byte in data[reply.drip_after :]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    except OSError:
                        pass  # the client gave up: what a tarpit is for
                    return
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            finally:
                with server._lock:
                    server.inflight -= 1

        do_GET = do_HEAD = _serve

    return Handler


# -- fake services ---------------------------------------------------------------------------------


def atom_feed(entries: list[dict]) -> str:
    """An arXiv API answer: ``entries`` have id, title, authors, published, version, doi,
    journal_ref, category (primary, cs.CV by default), or ``error``."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">',
        f"<title>arXiv Query</title><totalResults>{len(entries)}</totalResults>",
    ]
    for e in entries:
        if e.get("error"):
            parts.append(
                f"<entry><id>http://arxiv.org/api/errors#{escape(e['error'])}</id>"
                f"<title>Error</title><summary>{escape(e['error'])}</summary></entry>"
            )
            continue
        published = e.get("published", "2022-03-16T17:59:59Z")
        parts.append("<entry>")
        parts.append(f"<id>http://arxiv.org/abs/{e['id']}v{e.get('version', 1)}</id>")
        parts.append(f"<updated>{e.get('updated', published)}</updated>")
        parts.append(f"<published>{published}</published>")
        # arXiv wraps long titles over lines
        parts.append(f"<title>{escape(e['title']).replace(' ', chr(10) + '  ', 1)}</title>")
        parts.append("<summary>An abstract.</summary>")
        for name in e.get("authors", []):
            parts.append(f"<author><name>{escape(name)}</name></author>")
        if e.get("doi"):
            parts.append(f"<arxiv:doi>{escape(e['doi'])}</arxiv:doi>")
        if e.get("journal_ref"):
            parts.append(f"<arxiv:journal_ref>{escape(e['journal_ref'])}</arxiv:journal_ref>")
        parts.append(
            f'<arxiv:primary_category term="{e.get("category", "cs.CV")}" '
            'scheme="http://arxiv.org/schemas/atom"/>'
        )
        parts.append("</entry>")
    parts.append("</feed>")
    return "\n".join(parts)


def arxiv_api(server: FakeServer, papers: dict[str, dict], path: str = "/api/query") -> str:
    """Serve ``papers`` (id -> entry fields) like ``export.arxiv.org/api/query``; returns its URL.

    Every request's id list is kept in ``server.arxiv_batches``.
    """
    server.arxiv_batches = []

    def answer(request: Request) -> Reply:
        ids = [i for i in request.query.get("id_list", [""])[0].split(",") if i]
        server.arxiv_batches.append(ids)
        found = [{"id": i, **papers[i]} for i in ids if i in papers]
        return Reply(200, {"Content-Type": "application/atom+xml"}, atom_feed(found))

    return server.route(path, answer)


def crossref_api(server: FakeServer, works: dict[str, dict], path: str = "/crossref") -> str:
    """Serve ``works`` (DOI -> message fields) like ``api.crossref.org/works/{doi}``."""

    def answer(request: Request) -> Reply:
        doi = request.path[len(path) + len("/works/") :]
        for key, message in works.items():
            if key.lower() == doi.lower():
                return Reply.json(
                    {"status": "ok", "message-type": "work", "message": {"DOI": key, **message}}
                )
        return Reply(404, {"Content-Type": "text/plain"}, "Resource not found.")

    server.prefix(f"{path}/works/", answer)
    return server.url(path)


def doi_handles(server: FakeServer, registered: set[str], path: str = "/handles") -> str:
    """Serve the DOI handle API: responseCode 1 for ``registered`` DOIs, else 100 (HTTP 404)."""

    def answer(request: Request) -> Reply:
        doi = request.path[len(path) + 1 :]
        if doi in registered:
            return Reply.json({"responseCode": 1, "handle": doi, "values": []})
        return Reply.json({"responseCode": 100, "handle": doi}, status=404)

    server.prefix(f"{path}/", answer)
    return server.url(path)


def github_api(
    server: FakeServer,
    repos: dict[str, dict],
    moved: dict[str, str] | None = None,
    path: str = "/github",
) -> str:
    """Serve ``repos`` (owner/name -> fields) like ``api.github.com/repos/{owner}/{repo}``;
    ``moved`` maps an old owner/name to the new one (answered with a 301, as GitHub does)."""
    moved = moved or {}
    ids = {name: index for index, name in enumerate(repos, 1)}

    def answer(request: Request) -> Reply:
        rest = request.path[len(path) :]
        if rest.startswith("/repositories/"):
            number = int(rest.rsplit("/", 1)[-1])
            name = next(n for n, i in ids.items() if i == number)
        else:
            name = rest[len("/repos/") :]
            if name in moved:
                return Reply.redirect(server.url(f"{path}/repositories/{ids[moved[name]]}"))
            if name not in repos:
                return Reply.json({"message": "Not Found"}, status=404)
        data = {
            "full_name": name,
            "html_url": f"https://github.com/{name}",
            "archived": False,
            "disabled": False,
            "pushed_at": "2024-05-01T10:00:00Z",
            **repos[name],
        }
        return Reply.json(data)

    server.prefix(f"{path}/", answer)
    return server.url(path)


# -- a DNS of our own ------------------------------------------------------------------------------


class FakeResolver:
    """Stands in for ``socket.getaddrinfo`` (install with ``monkeypatch``): ``names`` maps a host
    name to ``"127.0.0.1"`` or to a getaddrinfo error number (``socket.EAI_AGAIN``...). Numeric
    addresses and ``localhost`` go to the real resolver (no network needed); any other name is an
    error (``EAI_NONAME``), so no test ever asks the real DNS."""

    def __init__(self, real: Callable, names: dict[str, object] | None = None):
        self.real = real
        self.names: dict[str, object] = dict(names or {})
        self.asked: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name == "localhost" or name.replace(".", "").isdigit():
            return self.real(host, port, *args, **kwargs)
        self.asked.append(name)
        answer = self.names.get(name, socket.EAI_NONAME)
        if isinstance(answer, str):
            return self.real(answer, port, *args, **kwargs)
        messages = {
            socket.EAI_AGAIN: "Temporary failure in name resolution",
            socket.EAI_NONAME: "Name or service not known",
        }
        raise socket.gaierror(answer, messages.get(answer, "lookup failed"))
