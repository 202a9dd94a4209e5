"""Opt-out signals read as their specifications say: header lines scoped one by one, <meta> as far as the
parser reads, TDMRep headers without the well-known fetch."""

from __future__ import annotations

import io

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from filters.optout.checker import OptOutChecker
from filters.optout.config import OptOutConfig
from filters.optout.x_robots import header_disallows, x_robots_verdict
from obelics.records import ReadStats
from obelics.warc import WarcConfig, iter_html_records
from pipeline.images.offline import disallowed_by_headers

LINES = ["googlebot: noindex", "noai"]


def _warc(tmp_path, body: bytes, headers: list[tuple[str, str]]):
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")] + headers, protocol="HTTP/1.1")
    w.write_record(w.create_warc_record("https://e.com/p.html", "response", payload=io.BytesIO(body),
                                        http_headers=http))
    path = tmp_path / "x.warc.gz"
    path.write_bytes(buf.getvalue())
    return str(path)


def test_scope_of_one_header_line_does_not_run_into_the_next():
    assert x_robots_verdict({"x-robots-tag": LINES}, "obelics-toolkit", ["noai"]) == "optout:x-robots-tag:noai"
    assert header_disallows(LINES, "obelics-toolkit", ["noai"])
    # joined into one value (what the readers did), the googlebot scope swallowed the noai
    assert x_robots_verdict({"x-robots-tag": ", ".join(LINES)}, "obelics-toolkit", ["noai"]) is None
    assert disallowed_by_headers({"x-robots-tag": LINES}, "obelics-toolkit", ["noai"])
    assert not disallowed_by_headers({"x-robots-tag": ["googlebot: noai"]}, "obelics-toolkit", ["noai"])


def test_warc_reader_keeps_repeated_headers_per_line(tmp_path):
    page = b"<html><body><p>" + b"Words of the page. " * 20 + b"</p></body></html>"
    path = _warc(tmp_path, page, [("X-Robots-Tag", LINES[0]), ("X-Robots-Tag", LINES[1])])
    (rec,) = list(iter_html_records(path, WarcConfig(), ReadStats()))
    assert rec.http_headers["x-robots-tag"] == LINES
    checker = OptOutChecker(OptOutConfig(documents=["x_robots"], images=["x_robots"]), session=object())
    assert checker.local_verdict(rec.url, "document", rec.http_headers) == "optout:x-robots-tag:noai"


def test_meta_robots_after_the_first_300k_bytes_is_seen(tmp_path):
    from obelics.config import load_profile
    from pipeline.stages import _extract

    filler = b"<p>" + b"A paragraph of ordinary words in a long page. " * 10 + b"</p>\n"
    page = (b"<html><head><title>t</title></head><body>" + filler * (450_000 // len(filler))
            + b'<meta name="robots" content="noai"></body></html>')
    assert len(page) > 400_000
    path = _warc(tmp_path, page, [])
    docs, _ = _extract(path, {"profile": load_profile("default")})
    assert docs[0].general_metadata.get("optout_meta", {}).get("robots") == ["noai"]


class _NoNetwork:
    def get(self, *a, **k):
        raise AssertionError("tdmrep_headers must not fetch anything")

    headers: dict = {}


def test_tdmrep_headers_honoured_without_the_well_known_fetch():
    checker = OptOutChecker(OptOutConfig(documents=["x_robots", "meta", "tdmrep_headers"],
                                         images=["x_robots", "tdmrep_headers"]), session=_NoNetwork())
    got = checker.check_urls(["https://e.com/a", "https://e.com/b"], "document",
                             headers_by_url={"https://e.com/a": {"tdm-reservation": "1"}})
    assert got == {"https://e.com/a": "optout:tdmrep:header", "https://e.com/b": None}
    got = checker.check_urls(["https://e.com/c.jpg"], "image",
                             headers_by_url={"https://e.com/c.jpg": {"tdm-reservation": "1"}})
    assert got == {"https://e.com/c.jpg": "optout:tdmrep:header"}
    page = '<html><head><meta name="tdm-reservation" content="1"></head><body>x</body></html>'
    assert checker.check_urls(["https://e.com/d"], "document", html_by_url={"https://e.com/d": page}) == {
        "https://e.com/d": "optout:tdmrep:meta"}
