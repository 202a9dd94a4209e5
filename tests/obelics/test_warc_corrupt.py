"""Damaged WARCs made here never abort a read and lose no good record."""

from __future__ import annotations

import io
import random

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from obelics.records import ReadStats
from obelics.warc import WarcConfig, iter_html_records, read_record_at

N = 12


def _page(i: int, size: int = 3000) -> bytes:
    rnd = random.Random(i)
    words = " ".join(rnd.choice(["river", "stone", "garden", "window", "paper", "light", "music", "bread"])
                     for _ in range(size // 6))
    return f"<html><head><title>Page {i}</title></head><body><p>{words}</p></body></html>".encode()


def build_warc(gzip: bool = True, special: dict | None = None) -> tuple[bytes, list[tuple[int, int]], dict]:
    """A WARC of N HTML responses, each after a request record; ``special[i]`` replaces page i's
    (payload, content_type). Returns (bytes, [(start, end) of each response record], {url: payload})."""
    special = special or {}
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gzip)
    w.write_record(w.create_warcinfo_record("test.warc.gz", {"software": "obelics tests"}))
    spans, pages = [], {}
    for i in range(N):
        url = f"https://test.example/page/{i}"
        payload, ctype = special.get(i, (_page(i), "text/html; charset=utf-8"))
        req = w.create_warc_record(url, "request", payload=io.BytesIO(b""),
                                   http_headers=StatusAndHeaders("GET /page HTTP/1.1", [("Host", "test.example")],
                                                                 is_http_request=True))
        w.write_record(req)
        start = buf.tell()
        headers = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(payload)))],
                                   protocol="HTTP/1.1")
        w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=headers))
        spans.append((start, buf.tell()))
        pages[url] = payload
    return buf.getvalue(), spans, pages


def read(data: bytes, config: WarcConfig | None = None):
    stats = ReadStats()
    recs = {r.url: r.payload for r in iter_html_records(io.BytesIO(data), config, stats, warc_filename="t.warc.gz")}
    return recs, stats


def test_intact_baseline():
    data, spans, pages = build_warc()
    recs, stats = read(data)
    assert recs == pages
    assert stats.records == 1 + 2 * N and stats.skipped["request"] == N and stats.skipped["warcinfo"] == 1


@pytest.mark.parametrize("k", [0, 5, N - 1])
def test_bytes_flipped_in_one_member(k):
    data, spans, pages = build_warc()
    start, end = spans[k]
    b = bytearray(data)
    for j in range(start + 40, min(end - 10, start + 40 + 30)):
        b[j] ^= 0x5A
    recs, stats = read(bytes(b))
    lost = f"https://test.example/page/{k}"
    assert recs == {u: p for u, p in pages.items() if u != lost}
    assert stats.skipped["corrupt_gzip_member"] >= 1


def test_crc_mismatch_is_caught():
    data, spans, pages = build_warc()
    start, end = spans[3]
    b = bytearray(data)
    b[end - 6] ^= 0xFF  # the CRC32 of member 3's trailer
    recs, stats = read(bytes(b))
    assert set(recs) == set(pages) - {"https://test.example/page/3"}
    assert stats.skipped["corrupt_gzip_member"] == 1


@pytest.mark.parametrize("k", [2, 7])
def test_member_cut_in_half(k):
    data, spans, pages = build_warc()
    start, end = spans[k]
    cut = data[:start + (end - start) // 2] + data[end:]
    recs, stats = read(cut)
    assert recs == {u: p for u, p in pages.items() if u != f"https://test.example/page/{k}"}
    assert stats.skipped["corrupt_gzip_member"] == 1


def test_truncated_file_keeps_every_earlier_record():
    data, spans, pages = build_warc()
    start, end = spans[-1]
    recs, stats = read(data[: start + (end - start) // 2])
    good = {u: p for u, p in pages.items() if u != f"https://test.example/page/{N - 1}"}
    last = recs.pop(f"https://test.example/page/{N - 1}", None)
    assert recs == good
    # a record cut by the end of the file is kept as a clipped payload (a prefix), and counted
    if last is not None:
        assert pages[f"https://test.example/page/{N - 1}"].startswith(last)
        assert stats.recovered["truncated_record"] == 1


def test_truncated_inside_a_header():
    data, spans, pages = build_warc()
    start, _ = spans[-1]
    recs, stats = read(data[: start + 12])
    assert recs == {u: p for u, p in pages.items() if u != f"https://test.example/page/{N - 1}"}


def test_garbage_between_members():
    data, spans, pages = build_warc()
    start, _ = spans[4]
    junk = random.Random(1).randbytes(5000)
    recs, stats = read(data[:start] + junk + data[start:])
    assert recs == pages
    assert stats.skipped["garbage_between_members"] >= 1


def test_oversized_record_skipped():
    big = b"<html><body>" + b"<p>long page</p>" * 20000 + b"</body></html>"
    data, spans, pages = build_warc(special={6: (big, "text/html")})
    recs, stats = read(data, WarcConfig(max_record_bytes=100_000))
    assert recs == {u: p for u, p in pages.items() if u != "https://test.example/page/6"}
    assert stats.skipped["oversized"] == 1
    # with the default limit it is read
    recs, _ = read(data)
    assert recs == pages


def test_binary_labelled_html_skipped():
    noise = random.Random(7).randbytes(20000)
    png = b"\x89PNG\r\n\x1a\n" + noise[:3000]
    data, spans, pages = build_warc(special={1: (noise, "text/html"), 8: (png, "text/html; charset=utf-8")})
    recs, stats = read(data)
    assert recs == {u: p for u, p in pages.items() if u not in ("https://test.example/page/1", "https://test.example/page/8")}
    assert stats.skipped["binary_payload"] == 2


def test_many_random_corruptions_never_abort():
    data, spans, pages = build_warc()
    rnd = random.Random(42)
    for _ in range(30):
        b = bytearray(data)
        hit = set()
        for _ in range(rnd.randint(1, 4)):
            j = rnd.randrange(len(b))
            b[j] ^= 1 << rnd.randrange(8)
            hit.update(i for i, (s, e) in enumerate(spans) if s <= j < e)
        recs, stats = read(bytes(b))
        # every response whose member was not touched survives byte for byte (a flip in a request or
        # warcinfo member costs nothing else either)
        for i in range(len(spans)):
            url = f"https://test.example/page/{i}"
            if i not in hit:
                assert recs.get(url) == pages[url]
            elif url in recs:
                assert recs[url] == pages[url]  # a flip the CRC did not reject cannot happen


def _plain(data_special=None):
    return build_warc(gzip=False, special=data_special)


def test_uncompressed_corrupt_header_resyncs():
    data, spans, pages = _plain()
    start, end = spans[5]
    b = bytearray(data)
    i = data.index(b"Content-Length: ", start)
    b[i + 16: i + 19] = b"zz9"  # a Content-Length that is not a number
    recs, stats = read(bytes(b))
    assert recs == {u: p for u, p in pages.items() if u != "https://test.example/page/5"}
    assert stats.skipped["corrupt_record"] == 1


def test_uncompressed_bad_magic_resyncs():
    data, spans, pages = _plain()
    start, _ = spans[2]
    b = bytearray(data)
    b[start: start + 5] = b"WXRC/"
    recs, stats = read(bytes(b))
    assert recs == {u: p for u, p in pages.items() if u != "https://test.example/page/2"}


def test_uncompressed_truncated():
    data, spans, pages = _plain()
    start, end = spans[-1]
    recs, _ = read(data[: start + (end - start) // 2])
    last = recs.pop(f"https://test.example/page/{N - 1}", None)
    assert recs == {u: p for u, p in pages.items() if u != f"https://test.example/page/{N - 1}"}
    assert last is None or pages[f"https://test.example/page/{N - 1}"].startswith(last)


def test_local_file_and_range_refetch(tmp_path):
    data, spans, pages = build_warc()
    path = tmp_path / "t.warc.gz"
    path.write_bytes(data)
    recs = list(iter_html_records(path))
    assert [(r.warc_record_offset, r.warc_record_offset + r.warc_record_length) for r in recs] == spans
    for r, (s, e) in zip(recs, spans):
        assert read_record_at(path, r.warc_record_offset, r.warc_record_length) == data[s:e]
        assert r.warc_filename == "t.warc.gz"


def test_whole_file_gzip_with_many_records():
    """A WARC gzipped as one member (not per record) still reads every record."""
    import gzip

    data, _, pages = _plain()
    recs, stats = read(gzip.compress(data, mtime=0))
    assert recs == pages and not stats.skipped.keys() - {"request", "warcinfo"}


def test_nameless_file_object_has_empty_filename():
    data, _, _ = build_warc()
    recs = list(iter_html_records(io.BytesIO(data)))
    assert recs and {r.warc_filename for r in recs} == {""}


def test_cut_inside_a_non_html_member_is_counted(tmp_path):
    import os as _os

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    html = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    w.write_record(w.create_warc_record("https://e.com/a", "response", http_headers=html,
                                        payload=io.BytesIO(b"<html><body><p>hello there words</p></body></html>")))
    start = buf.tell()
    png = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
    w.write_record(w.create_warc_record("https://e.com/i.png", "response", http_headers=png,
                                        payload=io.BytesIO(_os.urandom(50_000))))
    data = buf.getvalue()
    recs, stats = read(data[: start + (len(data) - start) // 2])
    assert len(recs) == 1
    assert stats.skipped.get("input_truncated") == 1
