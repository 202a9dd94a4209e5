"""bench.corpus: the copies of a page whose HTTP body is chunked or compressed are changed like a plain page's,
and stay records the pipeline's reader (and warcio's digest check) reads."""

from __future__ import annotations

import io
import re
import zlib
from collections import Counter

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import BufferedReader

from bench.corpus import (
    MUTATE,
    SHARE_EXACT,
    SHARE_NEAR,
    _Copy,
    _unit_hash,
    copy_record,
    decode_body,
    gzip_members,
    hosts_of,
    http_head,
)
from obelics.warc import iter_html_records

HOST = b"news.example.org"
PAGE = (b"<html><head><title>Harbour</title></head><body><p>" + b" ".join(
    b"The harbour boats carried fresh fish and salt every morning while gulls circled above the quiet town"
    for _ in range(30)) + b"</p><a href=\"http://news.example.org/next\">next</a></body></html>")


def _chunked(data: bytes, size: int = 700) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def _gzip(data: bytes, wbits: int = 31) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


def _record(http: bytes, body: bytes, url: bytes = b"http://news.example.org/harbour") -> tuple[bytes, bytes]:
    """(gzip member, its record) of one response record with these HTTP headers and stored body."""
    block = http + body
    rec = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + url
           + b"\r\nWARC-Record-ID: <urn:uuid:12345678-1234-5678-1234-567812345678>\r\nWARC-Date: 2023-01-01T00:00:00Z"
           + b"\r\nWARC-Block-Digest: sha1:AAAA\r\nWARC-Payload-Digest: sha1:BBBB\r\nContent-Type: application/http; "
           + b"msgtype=response\r\nContent-Length: %d\r\n\r\n" % len(block) + block + b"\r\n\r\n")
    return _gzip(rec), rec


def _distinct_url() -> bytes:
    """A URL that copy 1 makes a distinct document (the hash picks exact / near / distinct)."""
    for i in range(100):
        url = b"http://news.example.org/harbour-%d" % i
        if _unit_hash(1, url.decode()) >= SHARE_EXACT + SHARE_NEAR:
            return url
    raise AssertionError("no distinct URL in 100")


def _read(member: bytes) -> list:
    """(URL, payload) of every HTML record the pipeline's reader finds in ``member``."""
    return [(r.url, r.payload) for r in iter_html_records(io.BytesIO(member))]


def _words(data: bytes) -> list[bytes]:
    """The words of the text between tags (the words ``mutate`` swaps)."""
    return re.findall(rb"[A-Za-z]{3,}", b" ".join(re.findall(rb">([^<]+)<", data)))


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
CASES = {
    "chunked": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", _chunked(PAGE), (700, None)),
    "gzip": (HEAD + b"Content-Encoding: gzip\r\nContent-Length: 1\r\n\r\n", _gzip(PAGE), (0, "gzip")),
    "deflate": (HEAD + b"Content-Encoding: deflate\r\n\r\n", _gzip(PAGE, 15), (0, "deflate")),
    "raw deflate": (HEAD + b"Content-Encoding: deflate\r\n\r\n", _gzip(PAGE, -15), (0, "deflate_raw")),
    "chunked gzip": (HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", _chunked(_gzip(PAGE)),
                     (700, "gzip")),
    # what the shared WARCs hold too: codings named but not applied (warcio reads the bytes as they are), bare
    # LF line ends, and Common Crawl's X-Crawler-* names for codings already removed
    "gzip named, plain bytes": (HEAD.replace(b"\r\n", b"\n") + b"Content-Encoding: gzip\nContent-Length: 5\n\n",
                                PAGE, (0, None)),
    "chunked named, plain bytes": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", PAGE, (0, None)),
    "x-crawler names": (HEAD + b"X-Crawler-Content-Encoding: gzip\r\nX-Crawler-Transfer-Encoding: chunked\r\n\r\n",
                        PAGE, (0, None)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_encoded_page_is_copied_as_a_distinct_document_the_reader_reads(case):
    http, body, how = CASES[case]
    url = _distinct_url()
    member, rec = _record(http, body, url)
    [(url0, page0)] = _read(member)
    assert page0 == PAGE
    counts = Counter()
    out = copy_record(member, rec, _Copy(1, {HOST}), counts)
    [(url1, page1)] = _read(out)
    assert url1 == "http://c1.news.example.org/" + url.decode().split("/", 3)[3]
    assert b"http://c1.news.example.org/next" in page1  # the hosts in the page moved
    w0, w1 = _words(page0), _words(page1)
    assert len(w0) == len(w1)
    changed = sum(a != b for a, b in zip(w0, w1)) / len(w0)
    assert 0.3 * MUTATE < changed < 2 * MUTATE  # about MUTATE of its words swapped (some for the same word)
    assert counts == Counter({"html_changed" + ("_encoded" if how != (0, None) else ""): 1})
    # the same codings, and a record warcio reads with its digests checked (Content-Length and digests set)
    records = []
    for record in ArchiveIterator(io.BytesIO(out), check_digests="raise"):
        records.append((record, record.raw_stream.read()))
    [(record, stored)] = records
    assert record.http_headers.get_header("Content-Encoding") == http_head(http)[0].get_header("Content-Encoding")
    assert record.http_headers.get_header("Transfer-Encoding") == http_head(http)[0].get_header("Transfer-Encoding")
    if how[0]:
        first = re.match(rb"([0-9a-f]+)\r\n", stored)
        assert first and 0 < int(first[1], 16) <= how[0] and stored.endswith(b"\r\n0\r\n\r\n")
    if how[1]:
        assert stored != page1 and (how[0] or BufferedReader(io.BytesIO(stored), decomp_type=how[1].split("_")[0])
                                    .read() == page1)
    length = record.http_headers.get_header("Content-Length")
    assert length is None or int(length) == len(stored)


def test_copy_zero_and_exact_duplicates_are_the_same_bytes():
    member, rec = _record(CASES["chunked gzip"][0], CASES["chunked gzip"][1])
    assert copy_record(member, rec, None) == member
    url = next(b"http://news.example.org/x%d" % i for i in range(1000)
               if _unit_hash(1, f"http://news.example.org/x{i}") < SHARE_EXACT)
    member, rec = _record(CASES["gzip"][0], CASES["gzip"][1], url)
    counts = Counter()
    assert copy_record(member, rec, _Copy(1, {HOST}), counts) == member
    assert counts == Counter({"html_exact": 1})


def test_a_coding_warcio_does_not_decode_here_is_counted_and_copied_as_it_is():
    if "br" in BufferedReader.get_supported_decompressors():
        pytest.skip("brotli is installed: warcio decodes br")
    body = b"\x1b\x00\xf8\xa5@\x02br bytes"
    member, rec = _record(HEAD + b"Content-Encoding: br\r\n\r\n", body, _distinct_url())
    counts = Counter()
    out = copy_record(member, rec, _Copy(1, {HOST}), counts)
    assert counts == Counter({"html_undecoded_br_without_brotli": 1})
    for record in ArchiveIterator(io.BytesIO(out)):
        assert record.raw_stream.read() == body
        assert "c1.news.example.org" in record.rec_headers.get_header("WARC-Target-URI")


def test_the_shared_warcs_encoded_pages_differ_in_their_words_in_every_distinct_copy(shared):
    """Every HTML page of the shared WARCs that warcio de-chunks or decompresses: in each copy that makes it a
    distinct document, the reader reads it and about MUTATE of its words differ from copy 0's."""
    warcs = sorted(shared("data", "warc").glob("*.warc.gz"))
    hosts = hosts_of(warcs)
    copies = [_Copy(k, hosts) for k in (1, 2, 3)]
    seen = 0
    for w in warcs:
        for member, rec in gzip_members(w.read_bytes()):
            i = rec.find(b"\r\n\r\n")
            if b"WARC-Type: response" not in rec[:i]:
                continue
            block = rec[i + 4:]
            parsed = http_head(block)
            if parsed is None or "html" not in (parsed[0].get_header("content-type") or "").lower():
                continue
            if decode_body(parsed[0], block[parsed[1]:])[1] == (0, None):
                continue  # a plain body
            pages0 = _read(member)
            if not pages0:
                continue  # not a page the reader takes (status, size)
            [(url, page0)] = pages0
            target = re.search(rb"\r\nWARC-Target-URI: *([^\r\n]*)", rec[:i])[1].decode()  # as the corpus hashes it
            for copy in copies:
                if _unit_hash(copy.k, target) < SHARE_EXACT + SHARE_NEAR:
                    continue
                [(url1, page1)] = _read(copy_record(member, rec, copy))
                w0, w1 = _words(page0), _words(page1)
                assert url1 != url and len(w0) == len(w1)
                assert sum(a != b for a, b in zip(w0, w1)) > 0.3 * MUTATE * len(w0), url
                seen += 1
    assert seen >= 10  # the shared WARCs' chunked pages (dolma, ...) in three copies
