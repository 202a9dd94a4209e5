"""A loopback stand-in for Common Crawl: serves a folder over HTTP on 127.0.0.1 with Range requests.

``with CommonCrawlStandIn(root) as base_url:`` serves ``root/crawl-data/<snapshot>/warc.paths.gz``
and the WARC files it lists, so the real download path runs offline. Every request is logged in
``.requests`` (method, path, Range header) for assertions.
"""

from __future__ import annotations

import gzip
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    root: Path
    log: list

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        self.log.append(("GET", self.path, rng))
        path = (self.root / self.path.lstrip("/").split("?")[0]).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s)
            end = int(end_s) if end_s else len(data) - 1
            if start >= len(data):
                self.send_error(416)
                return
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CommonCrawlStandIn:
    """Serve ``root`` on 127.0.0.1:<free port>; the context value is the base URL."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.requests: list = []

    def __enter__(self) -> str:
        handler = type("H", (_Handler,), {"root": self.root, "log": self.requests})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_snapshot(root: str | Path, snapshot: str, warcs: list[Path]) -> list[str]:
    """Lay out ``warcs`` as a Common Crawl snapshot under ``root``; returns the listed paths."""
    root = Path(root)
    paths = []
    for i, w in enumerate(warcs):
        rel = f"crawl-data/{snapshot}/segments/0000{i}/warc/{snapshot}-{i:05d}.warc.gz"
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(w, dest)
        paths.append(rel)
    listing = root / "crawl-data" / snapshot / "warc.paths.gz"
    with gzip.open(listing, "wt", encoding="utf-8") as f:
        f.write("\n".join(paths) + "\n")
    return paths
