"""The reader's payload of a hand-parsed response (``obelics.warc._read_payload`` on a ``_ResponseRecord``): the
member's bytes sliced, or de-chunked by hand, equal to what warcio's readers give, or warcio reads it."""

from __future__ import annotations

import random

import pytest

from obelics.warc import (
    _dechunked,
    _read_payload,
    _record_loader,
    _response_record,
    _ResponseRecord,
    _warcio_record,
)
from tests.conftest import shared_path
from tests.obelics.test_warc_fast import _members, _response

LIMITS = (1 << 30, 0, 1, 7, 100, 1000, 5000)


def _both(data: bytes, limits=LIMITS) -> bool:
    """``_read_payload`` of the hand-parsed record equals warcio's record's for each limit; whether the bytes
    were read without warcio's readers at the first limit (False: not a hand-parsed response, or warcio read
    them)."""
    loader = _record_loader()
    if _response_record(data, loader) is None:
        return False
    by_hand = None
    for limit in limits:
        fast, slow = _response_record(data, loader), _warcio_record(data, loader)
        assert isinstance(fast, _ResponseRecord) and not isinstance(slow, _ResponseRecord)
        read = []
        fast.content_stream = lambda real=fast.content_stream, read=read: read.append(1) or real()
        assert _read_payload(fast, limit) == _read_payload(slow, limit), (limit, data[:300])
        by_hand = not read if by_hand is None else by_hand
    return bool(by_hand)


def test_every_response_of_the_shared_warcs(shared):
    """Plain and chunked pages and images of the shared WARCs: the same payload, most of them by hand."""
    by_hand = chunked = responses = 0
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for data in _members(path.read_bytes()):
            if b"WARC-Type: response\r\n" not in data[:4096]:
                continue
            responses += 1
            was_chunked = b"transfer-encoding: chunked" in data[:8192].lower()
            if _both(data):
                by_hand += 1
                chunked += was_chunked
    assert by_hand >= 0.85 * responses and chunked > 40, (by_hand, chunked, responses)


def _chunked(body: bytes, extra: bytes = b"") -> bytes:
    return _response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n" + extra, body)


WELL_FORMED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
    b"00005\r\nhello\r\n0a\r\n0123456789\r\n000\r\n\r\ntrailing bytes after the end",
    b"0\r\n\r\n",
    b" 5 \r\nhello\r\n0\r\n\r\n",                  # blanks (int() takes them)
    b"0x5\r\nhello\r\n0\r\n\r\n",                  # a 0x prefix (int(, 16) takes it)
    b"-0\r\n\r\n",
]
# a size line warcio cannot decode: that line and the rest as they are (read by hand too)
NOT_CHUNKED = [
    b"<html><body>not chunked at all</body></html>",  # a page stored de-chunked under its chunked header
    b"<html>\r\n<body>x</body>",
    b"5\nhello\r\n0\r\n\r\n",                      # a bare LF after the size
    b"zz\r\nhello\r\n0\r\n\r\n",                   # not hex
    b"\r\nhello\r\n0\r\n\r\n",                     # an empty size line
    b"\nhello",
    b"5_0\r\n" + b"h" * 80 + b"\r\n0\r\n\r\n",     # an underscore (int() takes it)
    b"5;" + b"e" * 70 + b"\r\nhello\r\n0\r\n\r\n",  # a size line over 64 bytes
    b"100000000\r\nhello\r\n0\r\n\r\n",            # over 2**31
    b"5\r\nhello\r\nzz\r\nmore text\r\n",            # after a chunk
    b"5\r\nhello\r\n5",                              # a size line cut by the end
    b"",
]
# warcio's own recovery: read by warcio
ILL_FORMED = [
    b"5\r\nhellox\r\n0\r\n\r\n",                   # no CRLF after the chunk
    b"5\r\nhello\r\n0\r\n",                        # no CRLF after the zero size
    b"5\r\nhello\r\n0\r\nX",
    b"5\r\nhel",                                   # cut inside a chunk
    b"-5\r\nhello\r\n0\r\n\r\n",                   # negative (int() takes it)
]


@pytest.mark.parametrize("body", WELL_FORMED + NOT_CHUNKED + ILL_FORMED)
def test_chunkings_read_as_warcio_reads_them(body):
    data = _chunked(body)
    assert _both(data, LIMITS + (2, 3, 4, 5, 6, 10, 11, 15, 16)) == (body not in ILL_FORMED)


def test_generated_chunkings():
    """Random pages cut into random chunks (limits at, before and after chunk ends), some then damaged:
    the same bytes as warcio's; the well-formed ones read by hand."""
    rng = random.Random(17)
    by_hand = 0
    for k in range(400):
        page = bytes(rng.choice(b"ab\r\n0;x") for _ in range(rng.randrange(0, 300)))
        pos, body = 0, b""
        while pos < len(page):
            n = rng.randrange(1, 60)
            size = format(min(n, len(page) - pos), rng.choice(["x", "X", "04x"])).encode()
            body += size + rng.choice([b"", b";a=b", b" ;q"]) + b"\r\n" + page[pos:pos + n] + b"\r\n"
            pos += n
        body += b"0\r\n\r\n"
        damaged = k % 3 == 0
        if damaged:
            i = rng.randrange(len(body))
            body = body[:i] + bytes([rng.choice(b"\r\nx0 ;")]) + body[i + rng.randrange(0, 2):]
        limits = (1 << 30, len(page), len(page) - 1, rng.randrange(0, len(page) + 2))
        taken = _both(_chunked(body), tuple(x for x in limits if x >= 0))
        by_hand += taken
        assert taken or damaged
    assert by_hand > 250


def test_encoded_bodies_go_to_warcio():
    import gzip

    zipped = gzip.compress(b"<p>zipped</p>")
    chunked = format(len(zipped), "x").encode() + b"\r\n" + zipped + b"\r\n0\r\n\r\n"
    assert not _both(_chunked(chunked, b"Content-Encoding: gzip\r\n"))
    assert not _both(_response(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", zipped))
    assert _both(_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", b"<p>plain</p>"))


def test_dechunked_limit_cuts_inside_a_chunk():
    data = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert _dechunked(data, 0, len(data), 7) == b"hello w"
    assert _dechunked(data, 0, len(data), 5) == b"hello"
    assert _dechunked(data, 0, len(data), 100) == b"hello world"
    assert _dechunked(data, 0, len(data) - 1, 100) is None  # the final CRLF cut off
