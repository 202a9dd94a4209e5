"""The reader's one-record path (``obelics.warc._one_record``) gives what ``ArchiveIterator`` gives, or steps aside."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from obelics.records import ReadStats
from obelics.warc import _one_record, _record_loader, iter_html_records
from tests.conftest import shared_path


def _members(data: bytes):
    """The decompressed bytes of each gzip member of ``data`` (complete members only)."""
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(data[pos:])
        except zlib.error:
            return
        if not d.eof:
            return
        yield out
        pos = len(data) - len(d.unused_data)


def _same(fast, data: bytes) -> None:
    """``fast`` is the only record ArchiveIterator finds in ``data``, with the same headers and payload."""
    recs = []
    for rec in ArchiveIterator(io.BytesIO(data)):
        recs.append((rec.rec_type, rec.rec_headers.headers, rec.http_headers, rec.content_stream().read()))
    assert len(recs) == 1
    rtype, rec_headers, http_headers, payload = recs[0]
    if rtype != "response":  # its HTTP headers unparsed: the block is read as ArchiveIterator(no_record_parse) reads it
        payload = next(iter(ArchiveIterator(io.BytesIO(data), no_record_parse=True))).content_stream().read()
    assert fast.rec_type == rtype
    assert fast.rec_headers.headers == rec_headers
    if rtype == "response":  # only responses carry parsed HTTP headers on this path
        assert (fast.http_headers is None) == (http_headers is None)
        if http_headers is not None:
            assert fast.http_headers.headers == http_headers.headers
            assert fast.http_headers.statusline == http_headers.statusline
    else:
        assert fast.http_headers is None
    assert fast.content_stream().read() == payload


def test_every_member_of_the_shared_warcs(shared):
    """Every member of every shared WARC: the same record as ArchiveIterator's, or None (then it reads them)."""
    loader = _record_loader()
    taken = 0
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for data in _members(path.read_bytes()):
            fast = _one_record(data, loader)
            if fast is not None:
                taken += 1
                _same(fast, data)
    assert taken > 700  # the common case (these files hold one well-formed record per member)


def _record(rtype: str = "response", body: bytes = b"<html><p>hello</p></html>", **kw) -> bytes:
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=False)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    w.write_record(w.create_warc_record("https://a.example/", rtype, payload=io.BytesIO(body),
                                        http_headers=http if rtype in ("response", "revisit") else None, **kw))
    return buf.getvalue()


def test_steps_aside_unless_exactly_one_well_formed_record():
    loader = _record_loader()
    one = _record()
    _same(_one_record(one, loader), one)
    assert _one_record(one + _record(), loader) is None                 # two records in one member
    assert _one_record(one + b"garbage\r\n", loader) is None             # more than blank lines after it
    assert _one_record(one.replace(b"Content-Length: ", b"Content-Length: 1", 1), loader) is None  # too long
    assert _one_record(one.replace(b"Content-Length: ", b"Content-Length: x", 1), loader) is None  # not a number
    assert _one_record(b"HTTP/1.1 200 OK\r\n\r\n", loader) is None        # not a WARC record
    assert _one_record(b"", loader) is None


@pytest.mark.parametrize("rtype", ["request", "metadata", "revisit", "resource"])
def test_other_records_are_typed_without_their_http_headers(rtype):
    data = _record(rtype, body=b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n" if rtype == "request" else b"x: y\r\n")
    fast = _one_record(data, _record_loader())
    _same(fast, data)


def test_reader_counts_are_those_of_archiveiterator_on_a_multi_record_member():
    """A member holding several records (a whole-file gzip) is read by ArchiveIterator: every page kept."""
    pages = [_record(body=f"<html><p>page {i} {'word ' * 50}</p></html>".encode()) for i in range(3)]
    blob = gzip.compress(b"".join(pages))
    stats = ReadStats()
    got = list(iter_html_records(io.BytesIO(blob), stats=stats))
    assert [r.payload.count(b"word") for r in got] == [50, 50, 50]
    assert stats.records == 3 and stats.html_records == 3


def test_typed_records_are_those_of_archiveiterator(shared):
    """Every non-response member of the shared WARCs is typed from its header bytes as warcio types it."""
    from obelics.warc import _typed_record

    loader = _record_loader()
    typed = 0
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for data in _members(path.read_bytes()):
            rec = _typed_record(data, loader)
            full = next(iter(ArchiveIterator(io.BytesIO(data), no_record_parse=True)))
            if rec is None:  # a response (parsed whole by _one_record)
                assert full.rec_type == "response"
                continue
            typed += 1
            assert rec.rec_type == full.rec_type != "response"
            assert rec.http_headers is None
            assert rec.rec_headers.headers == full.rec_headers.headers  # the rest: warcio's record, parsed on demand
    assert typed > 300


@pytest.mark.parametrize("edit", [
    (b"WARC-Type: request", b"WARC-Type: request\r\n continued"),  # a continuation line
    (b"WARC-Type: request", b"WARC-Type: request\x0b"),            # a control character
    (b"WARC-Type: request", b"WARC-Type: r\xc3\xa9quest"),         # not ASCII
    (b"WARC-Type: request", b"WARC-Type: request\nX: y"),          # a bare LF
    (b"WARC/1.0", b"WARC/9.9"),                                    # not a WARC version warcio knows
])
def test_typing_steps_aside_for_headers_that_are_not_plain(edit):
    from obelics.warc import _typed_record

    data = _record("request", body=b"GET / HTTP/1.1\r\n\r\n").replace(*edit, 1)
    assert _typed_record(data, _record_loader()) is None


def test_typed_record_values():
    from obelics.warc import _typed_record

    loader = _record_loader()
    data = _record("metadata", body=b"a: b\r\n").replace(b"WARC-Type: metadata", b"warc-type \t:  metadata  ", 1)
    assert _typed_record(data, loader).rec_type == next(iter(ArchiveIterator(io.BytesIO(data)))).rec_type == "metadata"
    no_type = _record("metadata", body=b"a: b\r\n").replace(b"WARC-Type: metadata\r\n", b"", 1)
    assert _typed_record(no_type, loader).rec_type is None  # counted as unknown_type, as before
    assert _typed_record(_record(), loader) is None  # a response: warcio parses it whole
    assert _typed_record(_record("request", body=b"GET / HTTP/1.1\r\n\r\n") + b"junk", loader) is None


def test_odd_header_bytes_are_those_of_the_regex_it_replaced():
    """``_odd_header`` (translate + two searches) says what ``[controls, non-ASCII]|\\r\\n[ \\t]`` said."""
    import random
    import re

    from obelics.warc import _odd_header

    regex = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]|\r\n[ \t]")
    rnd = random.Random(17)
    cases = [bytes([b]) for b in range(256)] + [b"a\r\n b", b"a\r\n\tb", b"a\r\nb", b"\r\n", b"x\r\n\r\n x"]
    cases += [bytes(rnd.choice(b"ab \t\r\n:\x0b\x7f\xc3\x00") for _ in range(rnd.randint(0, 12))) for _ in range(5000)]
    assert [_odd_header(c) for c in cases] == [regex.search(c) is not None for c in cases]


def test_isal_inflate_reads_what_zlib_reads(monkeypatch):
    """ISA-L's inflate (the reader's when installed) gives zlib's records, ranges and counts, damaged WARCs too."""
    from obelics import warc

    if warc._inflate_lib is zlib:
        pytest.skip("isal is not installed")
    isal = warc._inflate_lib
    clean = [p.read_bytes() for p in sorted(shared_path("data", "warc").glob("*.warc.gz"))]
    big = max(clean, key=len)
    n = len(big)
    flipped = bytearray(big)
    for k in range(20):
        flipped[n // 3 + 997 * k] ^= 0x5A
    cut = big.find(warc.GZIP_MAGIC, n // 2)  # a member's start
    damaged = [big[: 2 * n // 3], big[:40], bytes(flipped), big[:cut] + b"garbage between members" + big[cut:]]

    def read(data: bytes, lib):
        monkeypatch.setattr(warc, "_inflate_lib", lib)
        stats = ReadStats()
        recs = [(r.url, r.payload, r.warc_record_offset, r.warc_record_length)
                for r in iter_html_records(io.BytesIO(data), stats=stats)]
        return recs, stats.as_dict()

    total, skips = 0, set()
    for data in clean + damaged:
        with_isal = read(data, isal)
        assert with_isal == read(data, zlib)
        total += len(with_isal[0])
        skips |= set(with_isal[1]["skipped"]) | set(with_isal[1]["recovered"])
    assert total > 150 and {"corrupt_gzip_member", "garbage_between_members", "input_truncated"} <= skips, skips


def _fields(rec):
    """Everything the readers may read of a record, its streams read to their end."""
    def sh(h):
        return None if h is None else (h.statusline, h.headers, h.protocol, h.total_len, bool(h))

    raw = rec.raw_stream
    return (rec.format, rec.rec_type, sh(rec.rec_headers), sh(rec.http_headers), rec.content_type, rec.length,
            rec.payload_length, raw.tell(), raw.limit, rec.content_stream().read())


def _response_equal(data: bytes) -> bool:
    """The hand-parsed response record of ``data`` equals warcio's field by field; False when it steps aside."""
    from obelics.warc import _response_record, _warcio_record

    loader = _record_loader()
    fast = _response_record(data, loader)
    if fast is None:
        return False
    slow = _warcio_record(data, loader)
    assert slow is not None and _fields(fast) == _fields(slow)
    return True


def test_response_records_parsed_by_hand_are_warcios(shared):
    """Every response member of the shared WARCs: the hand-parsed header blocks and record are warcio's."""
    taken = responses = 0
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for data in _members(path.read_bytes()):
            responses += b"WARC-Type: response\r\n" in data[:4096]
            taken += _response_equal(data)
    # the rest (32 of 236): EUC-JP bytes and continuation lines in HTTP headers, dns: records
    assert taken > 200 and taken >= 0.85 * responses, (taken, responses)


def _response(http_head: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", body: bytes = b"<p>hi</p>",
              warc_extra: bytes = b"", target: bytes = b"https://a.example/x") -> bytes:
    block = http_head + b"\r\n" + body
    return (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: " + target + b"\r\n" + warc_extra
            + b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")


@pytest.mark.parametrize("http_head,plain", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", True),
    (b"HTTP/1.1   404   Not Found   \r\ncontent-type \t:   text/html; charset=utf-8  \r\n", True),
    (b"HTTP/1.0 200\r\nX-Empty:\r\nNoColonLine\r\nX-Robots-Tag: noai\r\nX-Robots-Tag: googlebot: none\r\n", True),
    (b"HTTP/1.1\r\nA:b:c\r\nTransfer-Encoding: chunked\r\n", True),
    (b" HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", True),         # a status line starting with a blank
    (b"HTTP/1.1\t200\tOK\r\nContent-Type: text/html\r\n", True),       # tabs, not blanks
    (b"ICY 200 OK\r\nContent-Type: text/html\r\n", True),              # not HTTP/1.x: unverified, as warcio reads it
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n continued\r\n", False),  # continuation: warcio's path
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/h\xc3\xa9ml\r\n", False),    # not ASCII: warcio's path
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\nX: y\r\n", False),    # a bare LF: warcio's path
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\rX: y\r\n", False),    # a bare CR: warcio's path
    (b"   \r\nContent-Type: text/html\r\n", False),                    # a blank status line: warcio's path
    (b"HTTP/1.1 200 OK\r\nX-C: a\x0bb\r\n", False),                      # a control character: warcio's path
])
def test_hand_parsed_headers_are_warcios_or_step_aside(http_head, plain):
    data = _response(http_head)
    assert _response_equal(data) == plain
    _same(_one_record(data, _record_loader()), data)  # either way, ArchiveIterator's record


@pytest.mark.parametrize("case", [
    dict(warc_extra=b"warc-type: request\r\n"),                       # a second WARC-Type: the first one counts
    dict(warc_extra=b"X-Odd   :   spaced value  \r\nNoColon\r\nWARC-Date: 2023-01-01T00:00:00Z\r\n"),
    dict(target=b"<https://a.example/x>"),                           # warcio strips the <>, as here
    dict(target=b"https://a.example/a b"),                           # warcio escapes the blank: its path
    dict(target=b"dns:a.example"),                                   # no HTTP headers: its path
    dict(body=b""),
    dict(http_head=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", body=gzip.compress(b"<p>zipped</p>")),
])
def test_hand_parsed_records_on_odd_warc_headers(case):
    data = _response(**case)
    _response_equal(data)
    _same(_one_record(data, _record_loader()), data)


def test_hand_parse_steps_aside_on_odd_lengths_and_versions():
    from obelics.warc import _response_record

    loader = _record_loader()
    data = _response()
    assert _response_equal(data)
    for edit in [(b"Content-Length: ", b"Content-Length: 9"), (b"Content-Length: ", b"Content-Length: x"),
                 (b"Content-Length: ", b"Content-Length: -"), (b"WARC/1.0", b"WARC/9.9"),
                 (b"WARC-Type: response", b"WARC-Type: Response"), (b"Content-Length: ", b"Content-Length-X: ")]:
        assert _response_record(data.replace(*edit, 1), loader) is None
    assert _response_record(data + b"junk", loader) is None
    zero = data.replace(b"Content-Length: ", b"Content-Length: 0\r\nX: ", 1)  # the first Content-Length: 0
    assert _response_record(zero, loader) is None
    headless = b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: https://a/\r\nContent-Length: 4\r\n\r\nabcd"
    assert _response_record(headless, loader) is None  # no end of HTTP headers inside the block


def _header_blocks():
    """Every WARC and HTTP header block of the shared WARCs' members, as (member bytes, start, end)."""
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for data in _members(path.read_bytes()):
            end = data.find(b"\r\n\r\n")
            if end < 0:
                continue
            yield data, 0, end
            http_end = data.find(b"\r\n\r\n", end + 4)
            if http_end >= 0:
                yield data, end + 4, http_end


def test_compiled_header_block_is_the_python_one(shared):
    """``_walk.header_block`` (one pass in C) gives ``_plain_block_python``'s status line, pairs and first values,
    and ``_walk.header_values`` the first values of the names asked, or None, on every header block of the shared
    WARCs, odd lines and random bytes at random offsets."""
    import random

    from obelics import budget
    from obelics.warc import _head_values_python, _plain_block_python
    from tests.conftest import compiled_or_skip

    block = compiled_or_skip(budget._compiled("header_block"), "no C header blocks")
    cases = list(_header_blocks())
    assert sum(block(*c) is not None for c in cases) > 1000
    odd = [b"", b"\r\n", b"WARC/1.0", b"A:b", b"X\r\n:", b"X\r\nA: \t", b"X\r\nA\t:\tb \t", b"X\r\n \tA: b",
           b"X\r\nA: b\r\n", b"X\r\nA: b\r", b"X\r\nA: b\n", b"X\r\n\r\nA: b", b"X\r\nNo colon\r\nk:v:w\r\nK: v2",
           b"X\r\nA: b\r\n c", b"X\r\nA: b\r\n\tc", b"X\r\nA: \x7f", b"X\r\nA: \xc3\xa9", b"X\r\nA:\x0bb", b"X\tY\r\nA:b"]
    cases += [(c, 0, len(c)) for c in odd]
    rnd = random.Random(17)
    for _ in range(20000):
        c = bytes(rnd.choice(b"aB: \t\r\n\r\n\x0b\x7f\xc3\x00-") for _ in range(rnd.randrange(40)))
        start = rnd.randrange(len(c) + 1)
        cases.append((c, start, rnd.randrange(start, len(c) + 1)))
    values = compiled_or_skip(budget._compiled("header_values"), "no C header values")
    wanted = [(b"warc-type", b"content-length"), (b"a", b"ab", b"k", b"b"), (b"no-such",), ()]
    for data, start, end in cases:
        assert block(data, start, end) == _plain_block_python(data, start, end), (data, start, end)
        for names in wanted:
            assert values(data, start, end, names) == _head_values_python(data, start, end, names), (data, names)
    for start, end in [(-1, 2), (0, 5), (3, 2)]:
        with pytest.raises(ValueError):
            block(b"abcd", start, end)
        with pytest.raises(ValueError):
            values(b"abcd", start, end, ())


def test_plain_headers_look_up_what_warcio_scans():
    """``_PlainHeaders.get_header`` (a dict of first values) gives warcio's scan for every name, case and missing
    name, also after warcio's own edits (``replace_header`` edits the last of two, ``get_header`` reads the first)."""
    from obelics.warc import _headers, _plain_block

    data = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Two: first\r\nx-two : second\r\nNoColon\r\n"
            b"K: kelvin\r\nEmpty:\r\n")
    status, pairs, first = _plain_block(data, 0, len(data) - 2)
    names = ["Content-Type", "content-type", "X-TWO", "x-two", "K", "\u212a", "Empty", "NoColon", "missing", ""]

    def same(fast):
        slow = StatusAndHeaders(status, list(fast.headers))
        for name in names:
            assert fast.get_header(name) == slow.get_header(name), name
            assert fast.get_header(name, "d") == slow.get_header(name, "d"), name

    fast = _headers(status, list(pairs), "HTTP/1.1", 0, first)
    same(fast)
    assert fast.get_header("x-two") == "first" and fast.get_header("nocolon") is None
    fast.replace_header("X-Two", "edited")  # the last one
    same(fast)
    assert fast.get_header("X-Two") == "first"
    for edit in (lambda h: h.add_header("Added", "1"), lambda h: h.remove_header("content-type")):
        fast = _headers(status, list(pairs), "HTTP/1.1", 0, dict(first))
        edit(fast)
        same(fast)
