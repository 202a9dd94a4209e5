"""The address guard: classification, literal notations, resolution, and the requests/urllib adapters
against a loopback server that is refused unless the test opts in explicitly."""

from __future__ import annotations

import ipaddress
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from obelics import netguard
from obelics.netguard import AddressRefused, literal_refusal, parse_ip_literal, refusal


@pytest.mark.parametrize("host,ip", [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("0x7F.0.0.1", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
    ("10.1", "10.0.0.1"), ("[::1]", "::1"), ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("8.8.8.8", "8.8.8.8"),
])
def test_parse_ip_literal(host, ip):
    assert parse_ip_literal(host) == ipaddress.ip_address(ip)


@pytest.mark.parametrize("host", ["example.com", "256.1.1.1", "1.2.3.4.5", "0xg", "12a", "[zz::1]", "a.1"])
def test_not_literals(host):
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize("ip,reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"), ("172.16.3.4", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("169.254.169.254", "link_local"), ("fe80::1", "link_local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "reserved"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link_local"), ("2002:7f00:1::", "loopback"),
    ("8.8.8.8", None), ("2001:4860:4860::8888", None), ("93.184.216.34", None),
])
def test_refusal(ip, reason):
    assert refusal(ip) == reason


def test_literal_refusal_and_allow_list(monkeypatch):
    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    assert literal_refusal("http://2130706433/x.jpg") == "loopback"
    assert literal_refusal("https://[::ffff:169.254.169.254]/x") == "link_local"
    assert literal_refusal("http://localhost:8000/x") == "loopback"
    assert literal_refusal("http://metadata.localhost/x") == "loopback"
    assert literal_refusal("https://example.com/x.jpg") is None  # names are checked after resolution
    assert literal_refusal("http://127.0.0.1/x", allow=["127.0.0.0/8"]) is None
    monkeypatch.setenv(netguard.ENV_ALLOW, "10.0.0.0/8, 127.0.0.1")
    assert literal_refusal("http://10.2.3.4/x") is None and literal_refusal("http://127.0.0.1/x") is None
    assert literal_refusal("http://127.0.0.2/x") == "loopback"


def test_checked_addresses_resolves_names(monkeypatch):
    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    with pytest.raises(AddressRefused) as e:
        netguard.checked_addresses("localhost", 80)
    assert e.value.reason == "loopback" and str(e.value).startswith("address_refused:loopback")
    assert netguard.checked_addresses("localhost", 80, allow=["127.0.0.0/8", "::1"])


class _Handler(BaseHTTPRequestHandler):
    hits: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        _Handler.hits.append(self.path)
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[4:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    _Handler.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_requests_session_refuses_loopback_unless_allowed(server, monkeypatch):
    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    base, port = server
    with pytest.raises(AddressRefused):
        netguard.guarded_session().get(base + "/x", timeout=5)
    assert _Handler.hits == []  # refused before connecting
    s = netguard.guarded_session(allow=["127.0.0.1/32"])  # the test's own server, explicitly
    assert s.get(base + "/x", timeout=5).text == "hello"
    # a redirect from the allowed server to another loopback address: refused at that hop
    with pytest.raises(AddressRefused) as e:
        s.get(base + f"/to/127.0.0.2:{port}/x", timeout=5)
    assert e.value.address == "127.0.0.2"
    # the same through the integer notation of 127.0.0.2
    with pytest.raises(AddressRefused):
        s.get(f"http://2130706434:{port}/x", timeout=5)


def test_optout_fetch_counts_a_refusal_as_an_error(server, monkeypatch):
    from filters.optout.config import HttpConfig
    from filters.optout.fetch import fetch, make_session

    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    base, _ = server
    got = fetch(make_session("test-agent"), base + "/robots.txt", HttpConfig())
    assert got.status is None and "address_refused:loopback" in got.error
    monkeypatch.setenv(netguard.ENV_ALLOW, "127.0.0.1/32")
    assert fetch(make_session("test-agent"), base + "/robots.txt", HttpConfig()).body == b"hello"


def test_urllib_handlers(server, monkeypatch):
    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    base, port = server
    refused = urllib.request.build_opener(*netguard.guarded_handlers())
    with pytest.raises(AddressRefused):
        refused.open(base + "/x", timeout=5)
    allowed = urllib.request.build_opener(*netguard.guarded_handlers(["127.0.0.1/32"]))
    assert allowed.open(base + "/x", timeout=5).read() == b"hello"
    with pytest.raises(AddressRefused):
        allowed.open(base + f"/to/127.0.0.3:{port}/x", timeout=5)


def test_warc_http_reader_is_guarded(server, monkeypatch):
    from obelics.warc import HttpRangeReader

    monkeypatch.delenv(netguard.ENV_ALLOW, raising=False)
    base, _ = server
    with pytest.raises(AddressRefused):
        HttpRangeReader(base + "/x.warc.gz", retries=0).read(10)
    assert _Handler.hits == []


@pytest.mark.parametrize("url,maybe", [
    ("https://example.com/a.jpg", False), ("https://cdn1.example.com:8080/a.jpg", False),
    ("http://2130706433/a", True), ("http://0x7f.1/a", True), ("http://127.0.0.1:80/a", True),
    ("http://[::1]/a", True), ("http://user@10.0.0.1/a", True), ("http://LOCALHOST/a", True),
    ("http://example.0x1f/a", True), ("//example.com/a", True),
])
def test_cheap_precheck_never_misses_a_literal(url, maybe):
    assert netguard.could_be_literal(url) is maybe
    if not maybe:
        assert literal_refusal(url) is None


def test_optout_fetch_stops_a_dripping_server(monkeypatch):
    """robots.txt one byte every 0.1 s: cut off at the whole-fetch deadline, not after the whole body."""
    import time as _time

    from filters.optout.config import HttpConfig
    from filters.optout.fetch import fetch, make_session

    sent = []

    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    sent.append(1)
                    _time.sleep(0.1)
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        got = fetch(make_session("t", allow=["127.0.0.1/32"]), f"http://127.0.0.1:{httpd.server_address[1]}/robots.txt",
                    HttpConfig(timeout_s=5, max_seconds=1.0))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got.status is None and "whole fetch" in got.error
    assert len(sent) < 100  # stopped after about a second of the 100 s body
