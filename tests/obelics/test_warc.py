"""WARC reading on the real shared WARCs: counts of MANIFEST.json, byte ranges, charsets."""

from __future__ import annotations

import io
import json

import pytest

from obelics.records import ReadStats
from obelics.warc import (
    WarcConfig,
    cc_url,
    choose_charset,
    html_record_at,
    is_binary,
    iter_html_records,
    iter_image_records,
    meta_charset,
    read_record_at,
    warc_filename_of,
)
from tests.conftest import shared_path


def _manifest():
    try:
        return json.loads(shared_path("data", "warc", "MANIFEST.json").read_text())
    except BaseException:  # skipped: no shared data (collection must not fail)
        return []


MANIFEST = _manifest()
ANY_STATUS = WarcConfig(accept_status=[], skip_empty=False)


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_shared_warc_reads_to_end_with_manifest_counts(entry):
    path = shared_path("data", "warc", entry["file"])
    stats = ReadStats()
    recs = list(iter_html_records(path, ANY_STATUS, stats))
    assert stats.records == entry["records"]
    assert len(recs) == entry["html_responses"]
    assert stats.skipped.get("revisit", 0) == entry["revisit"]
    assert not {"corrupt_record", "corrupt_gzip_member"} & set(stats.skipped)
    images = list(iter_image_records(path))
    assert len(images) == entry["image_records"]
    assert all(i.content_type.startswith("image/") for i in images)
    assert not images or sum(bool(i.payload) for i in images) >= len(images) - 1
    # every record carries its pointer, URL and capture date
    for r in recs:
        assert r.warc_filename == entry["file"]
        assert r.warc_record_length > 0 and r.url and r.capture_date
        assert all(k == k.lower() for k in r.http_headers)


def test_default_config_skips_non_200_and_empty_with_reasons():
    path = shared_path("data", "warc", "ukwa__gov.uk-BL-20140325121225068.warc.gz")
    stats = ReadStats()
    recs = list(iter_html_records(path, WarcConfig(), stats))
    assert len(recs) == 32  # 36 HTML responses, 3 are 404 and 1 is 403
    assert stats.skipped["http_status"] == 4
    assert stats.skipped["image"] == 7
    assert stats.html_records == 32
    stats = ReadStats()
    recs = list(iter_html_records(shared_path("data", "warc", "pywb__iana.warc.gz"), WarcConfig(accept_status=[]), stats))
    assert stats.skipped["empty_payload"] == 2 and len(recs) == 18


def test_offsets_lengths_and_payloads_match_the_reference():
    """The pointer of every HTML record equals the one the original build recorded (144 records)."""
    ref = {}
    for line in shared_path("data", "reference", "shared_warc.jsonl").open():
        o = json.loads(line)
        ref[(o["warc"], o["offset"])] = o
    seen = 0
    for warc in sorted({w for w, _ in ref}):
        for r in iter_html_records(shared_path("data", "warc", warc), ANY_STATUS):
            o = ref[(warc, r.warc_record_offset)]
            assert r.warc_record_length == o["record_length"]
            assert len(r.payload) == o["payload_bytes"]
            assert r.url == o["url"]
            seen += 1
    assert seen == len(ref) == 144


@pytest.mark.parametrize("name", ["dolma__sample-0000.warc.gz", "warcio__example-iana.org-chunked.warc",
                                  "resiliparse__clueweb-quirk.warc.gz", "resiliparse__clipped.warc.gz"])
def test_byte_range_refetch_equals_the_record(name):
    path = shared_path("data", "warc", name)
    for r in iter_html_records(path, ANY_STATUS):
        data = read_record_at(path, r.warc_record_offset, r.warc_record_length)
        again = list(iter_html_records(io.BytesIO(data), ANY_STATUS, warc_filename=name))
        assert len(again) == 1
        assert again[0].payload == r.payload and again[0].url == r.url and again[0].charset == r.charset
        one = html_record_at(path, r.warc_record_offset, r.warc_record_length, ANY_STATUS)
        assert one.payload == r.payload and one.warc_record_offset == r.warc_record_offset


def test_chunked_and_clipped_payloads():
    chunked = next(iter_html_records(shared_path("data", "warc", "warcio__example-iana.org-chunked.warc")))
    assert b"\r\n0\r\n" not in chunked.payload[-10:] and chunked.payload.rstrip().endswith(b"</html>")
    stats = ReadStats()
    clipped = list(iter_html_records(shared_path("data", "warc", "resiliparse__clipped.warc.gz"), None, stats))
    assert len(clipped) == 1 and stats.recovered["truncated_record"] == 1
    assert clipped[0].warc_record_offset == 0 and clipped[0].warc_record_length == 18184


def test_warc_018_clueweb_charset_from_http_header():
    recs = list(iter_html_records(shared_path("data", "warc", "resiliparse__clueweb-quirk.warc.gz")))
    assert len(recs) == 29
    assert {r.charset for r in recs} == {"euc_jp"}
    assert "\ufffd" not in recs[0].html[:2000]


def test_charset_order():
    page = b'<html><head><meta charset="windows-1251"></head><body>\xcf\xf0\xe8\xe2\xe5\xf2</body></html>'
    assert choose_charset(page, "utf-8", "iso-8859-2") == "utf-8"  # HTTP header first
    assert choose_charset(page, None, "iso-8859-2") == "iso8859-2"  # then WARC-Identified-Content-Charset
    assert choose_charset(page, None, None) == "cp1251"  # then <meta charset>
    assert choose_charset(page, "no-such-charset", None) == "cp1251"  # unknown labels fall through
    assert meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">') == "shift_jis"
    assert meta_charset(b'<meta charset="utf-16">') == "utf-8"  # WHATWG: ASCII-declared UTF-16 is UTF-8
    cyr = ("Привет, как дела? Всё хорошо, спасибо. Сегодня прекрасная погода. " * 20).encode("cp1251")
    assert cyr.decode(choose_charset(cyr, None, None)).startswith("Привет")
    assert choose_charset("héllo wörld".encode(), None, None) == "utf-8"
    assert choose_charset(b"plain", "ISO-8859-1", None) == "cp1252"  # WHATWG: latin-1 means windows-1252


def test_binary_detection():
    assert is_binary(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert is_binary(bytes(range(256)) * 10)
    assert not is_binary(b"<html><body>hello</body></html>")
    assert not is_binary("<html>hi</html>".encode("utf-16"))


def test_names_and_urls():
    p = "crawl-data/CC-MAIN-2023-06/segments/1674764494826.88/warc/CC-MAIN-20230126210844-20230127000844-00000.warc.gz"
    assert cc_url(p) == "https://data.commoncrawl.org/" + p
    assert cc_url("s3://commoncrawl/" + p) == "https://data.commoncrawl.org/" + p
    assert cc_url("https://example.org/x.warc.gz") == "https://example.org/x.warc.gz"
    assert warc_filename_of(cc_url(p)) == p
    assert warc_filename_of("/data/cc/" + p) == p
    assert warc_filename_of("/tmp/x/local.warc.gz") == "local.warc.gz"


@pytest.mark.parametrize("body,skipped", [
    (b" \t\r\n\x0b\x0c", "empty_payload"),          # ASCII whitespace only: empty, as bytes.strip() says
    (b"\x1c\x1d", "binary_payload"),                # not whitespace to bytes: read further (and binary)
    (b"\n <p>x</p> \n", None),
])
def test_whitespace_only_payloads_are_empty(body, skipped):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    w.write_record(w.create_warc_record("https://a.example/", "response", payload=io.BytesIO(body), http_headers=http))
    stats = ReadStats()
    recs = list(iter_html_records(io.BytesIO(buf.getvalue()), WarcConfig(), stats))
    assert (len(recs), dict(stats.skipped)) == ((1, {}) if skipped is None else (0, {skipped: 1}))
