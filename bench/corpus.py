"""A bench corpus that behaves like real data: copies of the shared WARCs whose pages are mostly distinct documents.

Plain copies of the shared WARCs die at URL dedup (every copy has the same URLs), so the stages after
it would run on ~140 pages whatever the corpus size. Here copy 0 is the original, and in every other copy
each HTML page (decided by a hash of the copy number and its URL, so the corpus is the same on every
machine) is one of:

- an exact duplicate (``share_exact``, 3%): record unchanged, removed by URL dedup;
- a near duplicate (``share_near``, 7%): its URL moved to the copy's hosts, text unchanged, removed by
  MinHash (and its images, the same bytes under the copy's URLs, by the image passes);
- a distinct document (the rest): URL and every URL in the HTML moved to the copy's hosts
  (``c<k>.<host>``: the same registered domain, so the per-domain paragraph pass sees a site's pages), and
  ``mutate`` (10%) of the words of its text swapped for other words of the same page, which leaves
  about 40% of its word 5-grams shared with the original: a different document for MinHash, while its
  language, stopwords and length stay those of a real page.

Image records are copied under the copy's hosts with their tiles shuffled (:func:`shuffled_image`: a
different picture for pHash, the same size and format), so every distinct page finds images of its own
instead of 120 copies of the same 57 pictures, which the pHash image passes would remove; request,
metadata and other records are copied too (URLs mapped), so the record mix of the WARCs is kept.
Work is done on raw gzip members (one record each, the WARC convention): hand-written because warcio
re-reads and re-serialises every header, and its writer needs a parsed record for each record kind.

An HTTP body with a transfer or content coding (``chunked``; ``gzip``, ``deflate``, and ``br`` where the
``brotli`` package is installed: what warcio decodes) is decoded with warcio's own readers, so into exactly
the bytes the pipeline's reader sees, changed like a plain body, and encoded again the same way (the
record keeps its headers; ``Content-Length`` and the WARC digests are set for the new bytes). A coding
warcio cannot decode here is counted (``counts``) and the body copied as it is.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser

SHARE_EXACT = 0.03
SHARE_NEAR = 0.07
MUTATE = 0.10

_WORD = re.compile(rb"[A-Za-z]{3,}")
_TEXT = re.compile(rb">([^<]+)<")
_UUID = re.compile(rb"<urn:uuid:([0-9a-fA-F-]{36})>")
_HOST = re.compile(rb"^[a-z]+://([^/:?#\s]+)", re.I)


def gzip_members(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(raw gzip member, its decompressed bytes) for each member of a .gz file."""
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        out = d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        yield data[pos:end], out
        if end <= pos:
            break
        pos = end


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _unit_hash(*parts) -> float:
    h = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def hosts_of(warcs: list[Path]) -> set[bytes]:
    """Every host named by a record's WARC-Target-URI."""
    hosts = set()
    for w in warcs:
        for _, rec in gzip_members(w.read_bytes()):
            head = rec[:rec.find(b"\r\n\r\n")]
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"warc-target-uri:"):
                    m = _HOST.match(line.split(b":", 1)[1].strip().strip(b"<>"))
                    if m:
                        hosts.add(m.group(1).lower())
    return hosts


class _Copy:
    """The mapping of one copy ``k``: hosts, record ids, text mutation."""

    def __init__(self, k: int, hosts: set[bytes]):
        self.k = k
        alt = b"|".join(re.escape(h) for h in sorted(hosts, key=len, reverse=True))
        self.host_re = re.compile(rb"(//)(" + alt + rb")(?=[/:?#\"'\s\\]|$)", re.I)
        self.prefix = f"c{k}.".encode()

    def hosts(self, data: bytes) -> bytes:
        return self.host_re.sub(lambda m: m.group(1) + self.prefix + m.group(2), data)

    def ids(self, data: bytes) -> bytes:
        return _UUID.sub(lambda m: b"<urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.k}:{m.group(1).decode()}"))
                         .encode() + b">", data)

    def mutate(self, body: bytes, url: str) -> bytes:
        """``MUTATE`` of the ASCII words of the text between tags swapped for other words of the page."""
        pool = _WORD.findall(body)
        if not pool:
            return body
        seed = f"{self.k}:{url}"
        count = [0]

        def word(m):
            count[0] += 1
            r = _unit_hash(seed, count[0])
            if r >= MUTATE:
                return m.group(0)
            return pool[int(r / MUTATE * len(pool)) % len(pool)]

        return _TEXT.sub(lambda m: b">" + _WORD.sub(word, m.group(1)) + b"<", body)


def shuffled_image(data: bytes, k: int, url: str, grid: int = 4) -> bytes:
    """The image with its ``grid`` x ``grid`` tiles permuted (a permutation per copy and URL), saved in its
    format: the same size, format and kind of pixels, but another picture for pHash, so the copies' images
    are distinct images like their pages are distinct documents. Bytes PIL cannot read are returned as they are."""
    import io
    import random

    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
        fmt = im.format
        im.load()
    except Exception:  # noqa: BLE001 - not an image PIL reads: kept as it is
        return data
    w, h = im.size
    tw, th = w // grid, h // grid
    if not fmt or tw < 2 or th < 2:
        return data
    boxes = [(x * tw, y * th, (x + 1) * tw, (y + 1) * th) for y in range(grid) for x in range(grid)]
    order = list(range(len(boxes)))
    random.Random(f"{k}:{url}").shuffle(order)
    out = im.copy()
    for dst, src in zip(boxes, order):
        out.paste(im.crop(boxes[src]), dst[:2])
    buf = io.BytesIO()
    try:
        out.save(buf, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    except Exception:  # noqa: BLE001 - a format PIL reads but does not write: kept as it is
        return data
    return buf.getvalue()


def _split_record(rec: bytes) -> tuple[list[bytes], bytes] | None:
    """(WARC header lines, block) of one record, or None when the member is not exactly one record."""
    i = rec.find(b"\r\n\r\n")
    if i < 0 or not rec.startswith(b"WARC/"):
        return None
    lines = rec[:i].split(b"\r\n")
    length = next((int(x.split(b":", 1)[1]) for x in lines if x.lower().startswith(b"content-length:")), None)
    block = rec[i + 4:]
    if length is None or len(block) != length + 4:  # one record, then its \r\n\r\n
        return None
    return lines, block[:length]


def _header(lines: list[bytes], name: bytes) -> bytes | None:
    for x in lines:
        if x.lower().startswith(name + b":"):
            return x.split(b":", 1)[1].strip()
    return None


class Undecodable(Exception):
    """An HTTP body whose coding warcio does not decode here (its reason is the message)."""


def http_head(block: bytes) -> tuple[StatusAndHeaders, int] | None:
    """A response block's HTTP headers as warcio parses them, and their length in bytes (None: no status line)."""
    stream = io.BytesIO(block)
    try:
        http = StatusAndHeadersParser([], verify=False).parse(stream)
    except EOFError:
        return None
    return (http, stream.tell()) if http.protocol else None


def decode_body(http: StatusAndHeaders, body: bytes) -> tuple[bytes, tuple[int, str | None]]:
    """(the body as the reader sees it, how it was encoded: chunk size or 0, content coding or None).

    warcio's rules (``ArcWarcRecord.content_stream``): chunked only when ``Transfer-Encoding`` is exactly
    ``chunked`` and the body starts with a chunk; a content coding only when it is one warcio decodes and
    the body decodes (else warcio reads the bytes as they are, and so do we)."""
    chunk = 0
    data = body
    if http.get_header("transfer-encoding") == "chunked":
        data = ChunkedDataReader(io.BytesIO(body)).read()
        if data != body:  # else not chunked after all: warcio fell back to the bytes as they are
            try:
                chunk = int(body[:body.find(b"\r\n")].split(b";")[0], 16) or 8192
            except ValueError:
                chunk = 8192
    coding = (http.get_header("content-encoding") or "").strip().lower() or None
    if coding == "br" and coding not in BufferedReader.get_supported_decompressors():
        raise Undecodable("br_without_brotli")
    if coding not in BufferedReader.get_supported_decompressors():
        return data, (chunk, None)  # an unknown coding: warcio (and the reader) take the bytes as they are
    try:
        out = BufferedReader(io.BytesIO(data), decomp_type=coding).read()
    except Exception as e:  # noqa: BLE001 - broken after its start: the reader's own read fails too
        raise Undecodable(f"corrupt_{coding}") from e
    if out == data:  # not compressed after all: warcio fell back to the bytes as they are
        return data, (chunk, None)
    if coding == "deflate" and not (len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0):
        coding = "deflate_raw"  # no zlib header: warcio's deflate_alt
    return out, (chunk, coding)


def encode_body(data: bytes, how: tuple[int, str | None]) -> bytes:
    """``data`` encoded as :func:`decode_body` found it (content coding, then chunks)."""
    chunk, coding = how
    if coding == "br":
        import brotli

        data = brotli.compress(data)
    elif coding:
        wbits = {"gzip": 31, "deflate": 15, "deflate_raw": -15}[coding]
        c = zlib.compressobj(6, zlib.DEFLATED, wbits)
        data = c.compress(data) + c.flush()
    if chunk:
        data = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + chunk]), data[i:i + chunk])
                        for i in range(0, len(data), chunk)) + b"0\r\n\r\n"
    return data


def _digest(data: bytes) -> bytes:
    return b"sha1:" + base64.b32encode(hashlib.sha1(data).digest())


def _count(counts: Counter | None, key: str) -> None:
    if counts is not None:
        counts[key] += 1


def copy_record(member: bytes, rec: bytes, copy: _Copy | None, counts: Counter | None = None) -> bytes:
    """One gzip member of copy ``copy`` (None: copy 0, unchanged); ``counts`` (if given) counts what was done
    to each HTML page and image."""
    if copy is None:
        return member
    split = _split_record(rec)
    if split is None:
        _count(counts, "unsplit_member")
        return member  # several records in a member, or a broken one: copied as it is (an exact duplicate)
    lines, block = split
    url = (_header(lines, b"warc-target-uri") or b"").decode("latin-1")
    rtype = (_header(lines, b"warc-type") or b"").lower()
    parsed = http_head(block) if rtype == b"response" else None
    new_block = block
    if parsed is not None:
        http, head_len = parsed
        head, body = block[:head_len], block[head_len:]
        ctype = (http.get_header("content-type") or "").lower()
        kind = "image" if ctype.strip().startswith("image/") else "html" if "html" in ctype else None
        r = _unit_hash(copy.k, url)
        if kind == "html" and r < SHARE_EXACT:
            _count(counts, "html_exact")
            return member  # an exact duplicate: same URL, same bytes
        if kind:
            try:
                data, how = decode_body(http, body)
            except Undecodable as e:
                _count(counts, f"{kind}_undecoded_{e}")
                data = None  # copied as it is (for a page: in effect a near duplicate)
            if data is not None:
                if kind == "image":
                    data = shuffled_image(data, copy.k, url)
                else:
                    data = copy.hosts(data)
                    if r >= SHARE_EXACT + SHARE_NEAR:
                        data = copy.mutate(data, url)
                _count(counts, f"{kind}_{'near' if kind == 'html' and r < SHARE_EXACT + SHARE_NEAR else 'changed'}"
                       + ("_encoded" if how != (0, None) else ""))
                body = encode_body(data, how)
                head = re.sub(rb"(?im)^(content-length[ \t]*:)[^\r\n]*", lambda m: m.group(1) + b" %d" % len(body),
                              head)
                new_block, payload = head + body, body
    out = []
    for x in lines:
        low_x = x.lower()
        if new_block is not block and low_x.startswith(b"warc-block-digest:"):
            x = b"WARC-Block-Digest: " + _digest(new_block)
        elif new_block is not block and low_x.startswith(b"warc-payload-digest:"):
            x = b"WARC-Payload-Digest: " + _digest(payload)
        elif low_x.startswith(b"content-length:"):
            x = b"Content-Length: %d" % len(new_block)
        elif low_x.startswith(b"warc-target-uri:"):
            x = copy.hosts(x)
        elif b"urn:uuid:" in x:
            x = copy.ids(x)
        out.append(x)
    return _gzip(b"\r\n".join(out) + b"\r\n\r\n" + new_block + b"\r\n\r\n")


def realistic_corpus(warcs: list[Path], folder: Path, copies: int, units: int,
                     counts: Counter | None = None) -> list[str]:
    """``copies`` copies of ``warcs`` (copy 0 the original) concatenated into ``units`` WARC files; ``counts``
    (if given) counts what :func:`copy_record` did to the copies' pages and images."""
    hosts = hosts_of(warcs)
    members = {w: list(gzip_members(w.read_bytes())) for w in warcs}
    outs = [folder / f"unit{u:03d}.warc.gz" for u in range(units)]
    handles = [open(p, "wb") for p in outs]
    try:
        for k in range(copies):
            copy = _Copy(k, hosts) if k else None
            f = handles[k % units]
            for w in warcs:
                for member, rec in members[w]:
                    f.write(copy_record(member, rec, copy, counts))
    finally:
        for h in handles:
            h.close()
    return [str(p) for p in outs]
