"""Reading WARCs over http(s): streamed, retried, resumed with Range after a dropped connection.

The server is a loopback ``http.server`` on 127.0.0.1 serving an in-memory WARC.
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from obelics.records import ReadStats
from obelics.warc import WarcConfig, html_record_at, iter_html_records, read_record_at
from tests.obelics.test_warc_corrupt import build_warc

FAST = WarcConfig(http_backoff=0.01, http_retries=4, http_timeout=5.0)


class _Server:
    def __init__(self, data: bytes, drops: int = 0, drop_at: float = 0.5, fail_first: int = 0, ranges: bool = True):
        self.data = data
        self.drops = drops  # how many responses are cut off mid-body
        self.fail_first = fail_first  # how many requests get a 503 first
        self.requests: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_error(503)
                    return
                if self.path != "/crawl-data/test.warc.gz":
                    self.send_error(404)
                    return
                start, end = 0, len(outer.data) - 1
                m = re.match(r"bytes=(\d+)-(\d*)", rng or "")
                if m and ranges:
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else end
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(outer.data)}")
                else:
                    self.send_response(200)
                body = outer.data[start:end + 1]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drops > 0 and len(body) > 1000:
                    outer.drops -= 1
                    self.wfile.write(body[: int(len(body) * drop_at)])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/crawl-data/test.warc.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _allow_test_server(monkeypatch):
    """The address guard (obelics.netguard) refuses loopback: this module's own server is let through."""
    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")


@pytest.fixture(scope="module")
def warc():
    return build_warc()


def _urls(records):
    return {r.url: r.payload for r in records}


def test_http_stream_equals_local(warc):
    data, spans, pages = warc
    with _Server(data) as srv:
        stats = ReadStats()
        recs = list(iter_html_records(srv.url, FAST, stats))
    assert _urls(recs) == pages
    assert recs[0].warc_filename == "crawl-data/test.warc.gz"
    assert [(r.warc_record_offset, r.warc_record_offset + r.warc_record_length) for r in recs] == spans
    assert stats.retries == 0


@pytest.mark.parametrize("drop_at", [0.3, 0.77])
def test_dropped_connection_resumes_with_range(warc, drop_at):
    data, spans, pages = warc
    with _Server(data, drops=2, drop_at=drop_at) as srv:
        stats = ReadStats()
        recs = list(iter_html_records(srv.url, FAST, stats))
        requests_seen = list(srv.requests)
    assert _urls(recs) == pages
    assert stats.retries == 2
    assert requests_seen[0] is None and all(r and r.startswith("bytes=") for r in requests_seen[1:])
    assert len(requests_seen) == 3


def test_server_errors_are_retried(warc):
    data, _, pages = warc
    with _Server(data, fail_first=2) as srv:
        stats = ReadStats()
        recs = list(iter_html_records(srv.url, FAST, stats))
    assert _urls(recs) == pages and stats.retries == 2


def test_server_without_range_support(warc):
    data, _, pages = warc
    with _Server(data, drops=1, ranges=False) as srv:
        recs = list(iter_html_records(srv.url, FAST))
    assert _urls(recs) == pages


def test_missing_file_is_an_error(warc):
    data, _, _ = warc
    with _Server(data) as srv, pytest.raises(FileNotFoundError):
        list(iter_html_records(srv.url.replace("test.warc.gz", "nope.warc.gz"), FAST))


def test_range_fetch_over_http(warc):
    data, spans, pages = warc
    with _Server(data) as srv:
        for s, e in spans[:3]:
            assert read_record_at(srv.url, s, e - s, FAST) == data[s:e]
            rec = html_record_at(srv.url, s, e - s, FAST)
            assert rec.payload == pages[rec.url] and rec.warc_record_offset == s
        assert all(r and r.startswith("bytes=") for r in srv.requests)


def test_corrupt_member_over_http_resyncs(warc):
    data, spans, pages = warc
    s, e = spans[4]
    b = bytearray(data)
    b[s + 50] ^= 0xFF
    with _Server(bytes(b)) as srv:
        stats = ReadStats()
        recs = list(iter_html_records(srv.url, FAST, stats))
    assert _urls(recs) == {u: p for u, p in pages.items() if u != "https://test.example/page/4"}
