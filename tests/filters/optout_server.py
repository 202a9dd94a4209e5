"""Loopback HTTP servers for the opt-out tests: websites with opt-out signals and a Spawning stand-in.

Everything binds to 127.0.0.1 on a free port, serves from a thread, and is shut down by the fixture.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = tuple[int, list[tuple[str, str]], bytes]


class Site:
    """One origin: ``routes`` maps a path to ``(status, headers, body)`` or a callable returning one."""

    def __init__(self, routes: dict[str, Route | Callable[[], Route]], delay_s: float = 0.0):
        self.routes = routes
        self.delay_s = delay_s
        self.hits: Counter = Counter()
        self.bodies: list[bytes] = []
        self.headers_seen: list[dict[str, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self, body_in: bytes = b""):
                path = self.path
                site.hits[path] += 1
                site.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                if body_in:
                    site.bodies.append(body_in)
                if site.delay_s:
                    time.sleep(site.delay_s)
                route = site.routes.get(path.split("?")[0])
                if callable(route):
                    route = route(body_in, dict(self.headers))
                status, headers, body = route or (404, [("Content-Type", "text/plain")], b"not found")
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                self._serve()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(n))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def spawning_route(token: str, opted: Callable[[str], bool], fail_first: int = 0, status: int = 500,
                   retry_after: str | None = None):
    """A stand-in for the Spawning query endpoint: checks the token, answers ``urls[i].optOut``.

    The first ``fail_first`` calls answer ``status`` (with ``Retry-After`` when given).
    """
    calls = {"n": 0}

    def route(body: bytes, headers: dict) -> Route:
        calls["n"] += 1
        if headers.get("Authorization") != f"API {token}":
            return 401, [("Content-Type", "application/json")], b'{"detail": "bad token"}'
        if calls["n"] <= fail_first:
            extra = [("Retry-After", retry_after)] if retry_after is not None else []
            return status, extra, b"try later"
        urls = body.decode("utf-8").split("\n")
        if len(urls) < 2:  # the real API wants more than one URL
            return 422, [], b"need more than one url"
        answer = {"urls": [{"url": u, "optOut": bool(u) and opted(u)} for u in urls]}
        return 200, [("Content-Type", "application/json")], json.dumps(answer).encode()

    route.calls = calls
    return route
