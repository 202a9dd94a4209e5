"""Stream HTML (and image) ``response`` records out of WARC files, local or over http(s).

Record parsing is warcio's (headers, chunked transfer-encoding, content-encoding). What warcio does
not do is survive damage: on a corrupt gzip member it raises, and its decompressor silently returns
``b''`` after a mid-stream error. So this module owns the layer below warcio:

- ``.warc.gz``: the raw stream is cut into gzip members here, inflated by ISA-L (``isal``, zlib's API and
  output; :mod:`zlib` where it is missing). A member holding exactly one
  well-formed record (the WARC convention, and nearly every member) is parsed from its bytes by warcio's
  record loader, its HTTP headers only if it is a ``response``; a plain non-response record is typed from
  its header bytes alone (:func:`_typed_record`). Any other member's decompressed bytes go to warcio's
  :class:`ArchiveIterator`, which gives the same records for the plain ones. A member whose deflate data or CRC is bad
  is skipped and counted, and reading resyncs at the next gzip header that decompresses to ``WARC/``.
  A record is only yielded once its member's CRC has checked, so a member cut in half never leaks
  garbage into a document. A member cut by the end of the file (the ``clipped`` case) is yielded as a
  truncated record when no later member exists.
- ``.warc``: warcio reads the stream; on an error, reading resyncs at the next ``WARC/`` line.

Sources are local paths, file objects, http(s) URLs (Common Crawl's
``https://data.commoncrawl.org/<path>``), streamed with requests, retried with backoff, and resumed with
a ``Range`` request after a dropped connection, or object-store URIs (``s3://...``, any fsspec
filesystem, see :mod:`obelics.storage`), read in ranged blocks. ``s3://commoncrawl/...`` is read from
S3 when AWS credentials are given, else over HTTPS from the same path. Every record keeps its exact byte range
(``warc_record_offset``/``warc_record_length``: the gzip member for ``.gz``) so that
:func:`read_record_at` can fetch it again.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.digestverifyingreader import DigestChecker
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecord, ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeaders

from obelics.netguard import AddressRefused
from obelics.records import HtmlRecord, ImageRecord, ReadStats

try:  # ISA-L's inflate: zlib's API and output, in about half zlib's time (40% of the reader's work was zlib's)
    from isal import isal_zlib as _inflate_lib
except ImportError:  # not installed (it is a dependency): zlib, same records
    _inflate_lib = zlib
_INFLATE_ERRORS = (zlib.error, _inflate_lib.error)

log = logging.getLogger(__name__)

CC_BASE_URL = "https://data.commoncrawl.org/"
GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass
class WarcConfig:
    """The ``warc`` section of a profile."""

    max_record_bytes: int = 10_000_000  # records (WARC block) larger than this are skipped and counted
    html_mime_types: list[str] = field(default_factory=lambda: ["text/html", "application/xhtml+xml"])
    accept_status: list[int] = field(default_factory=lambda: [200])  # empty: any HTTP status
    skip_empty: bool = True  # 0-byte HTML payloads are skipped and counted
    sniff_untyped: bool = True  # a response without Content-Type is HTML if its first bytes look like it
    meta_prescan_bytes: int = 4096  # where <meta charset> is looked for
    binary_control_ratio: float = 0.05  # a text/html payload with more control bytes than this is binary
    http_timeout: float = 60.0
    http_retries: int = 8
    http_backoff: float = 1.0  # seconds before the first retry, doubled each time (capped at 30 s)
    read_block_bytes: int = 1 << 16


def warc_config(profile=None) -> WarcConfig:
    """The ``warc`` section of ``profile`` (a name, a path or a loaded profile); defaults if None."""
    if profile is None:
        return WarcConfig()
    from obelics.config import load_profile

    return load_profile(profile).section("warc", WarcConfig)


# ---------------------------------------------------------------------------------------------
# Sources: local files and resumable http(s) streams, both with tell() and seek()
# ---------------------------------------------------------------------------------------------


CC_S3_PREFIX = "s3://commoncrawl/"


def is_url(source) -> bool:
    """A URI (``http(s)://``, ``s3://``, any fsspec scheme but ``file://``), not a local path."""
    from obelics.storage import is_remote

    return isinstance(source, str) and is_remote(source)


def is_http(source) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def aws_credentials_given() -> bool:
    """AWS credentials in the environment (keys or a named profile): Common Crawl can be read from S3."""
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


def cc_url(path: str, base_url: str = CC_BASE_URL) -> str:
    """The download URL of a Common Crawl path (``crawl-data/CC-MAIN-.../x.warc.gz``); URLs pass through."""
    if path.startswith(("http://", "https://")):
        return path
    if path.startswith(CC_S3_PREFIX):
        path = path[len(CC_S3_PREFIX):]
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def resolve_source(source: str) -> str:
    """Where ``source`` is read from: ``s3://commoncrawl/...`` goes over HTTPS without AWS credentials
    (the bucket needs signed requests); everything else is read where it is."""
    if source.startswith(CC_S3_PREFIX) and not aws_credentials_given():
        return cc_url(source)
    return source


def warc_filename_of(source) -> str:
    """The ``warc_filename`` recorded for ``source``: the Common Crawl path when there is one
    (``crawl-data/...`` inside a URL or a local path), else the URL, else the file's name."""
    s = str(source)
    i = s.find("crawl-data/")
    if i >= 0:
        return s[i:]
    if is_url(s):
        return s
    return os.path.basename(s)


class HttpRangeReader(io.RawIOBase):
    """A read-only, seekable stream over an http(s) URL.

    Reads stream with requests; a dropped connection, a timeout, a server error or a short body is
    retried with ``Range: bytes=<pos>-`` (exponential backoff, ``retries`` failures in a row at most).
    The last ``history`` bytes stay in memory so that short backward seeks (resync after a corrupt
    gzip member) do not reopen the connection; other seeks reopen at the new position.
    """

    def __init__(self, url: str, timeout: float = 60.0, retries: int = 8, backoff: float = 1.0,
                 session=None, stats: ReadStats | None = None, start: int = 0, end: int | None = None,
                 history: int = 1 << 20):
        import requests

        self.url = cc_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        if session is None:  # only public addresses (obelics.netguard; OBELICS_NET_ALLOW for mirrors)
            from obelics.netguard import guard_session

            session = guard_session(requests.Session())
        self.session = session
        self.stats = stats
        self.pos = start  # logical position
        self.net_pos = start  # position of the network stream; history holds [net_pos - len, net_pos)
        self.end = end  # exclusive end of the wanted range, None: to the end of the resource
        self.size: int | None = None
        self.history = history
        self._hist = bytearray()
        self._resp = None
        self._eof = False
        self._expected_end: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.pos
        elif whence == 2:
            if self.size is None:
                self._open()
            pos += self.size or 0
        if self.net_pos - len(self._hist) <= pos <= self.net_pos:
            self.pos = pos
            return pos
        if self._resp is not None and 0 < pos - self.net_pos <= 1 << 20:
            self.pos = self.net_pos
            while self.pos < pos and self.read(min(1 << 16, pos - self.pos)):
                pass
            return self.pos
        self._close_resp()
        self._hist.clear()
        self.pos = self.net_pos = pos
        self._eof = False
        return pos

    def _close_resp(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._resp = None

    def _open(self) -> None:
        import requests

        headers = {"Accept-Encoding": "identity"}
        if self.net_pos > 0 or self.end is not None:
            headers["Range"] = f"bytes={self.net_pos}-" + ("" if self.end is None else str(self.end - 1))
        resp = self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout)
        if resp.status_code == 416:
            resp.close()
            self._eof = True
            return
        if resp.status_code not in (200, 206):
            resp.close()
            if resp.status_code in (404, 403, 410):
                raise FileNotFoundError(f"{self.url}: HTTP {resp.status_code}")
            raise requests.HTTPError(f"{self.url}: HTTP {resp.status_code}")
        skip = 0
        if resp.status_code == 200:
            length = resp.headers.get("Content-Length")
            self.size = int(length) if length and length.isdigit() else None
            skip = self.net_pos  # the server ignored Range: read through to the position
        else:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if m and m.group(3) != "*":
                self.size = int(m.group(3))
        self._resp = resp
        self._expected_end = self.end if self.end is not None else self.size
        while skip > 0:
            chunk = resp.raw.read(min(skip, 1 << 16), decode_content=False)
            if not chunk:
                raise ConnectionError("short body while skipping to the range start")
            skip -= len(chunk)

    def _net_read(self, n: int) -> bytes:
        failures = 0
        while True:
            try:
                if self._resp is None:
                    self._open()
                    if self._eof:
                        return b""
                data = self._resp.raw.read(n, decode_content=False)
                if not data and self._expected_end is not None and self.net_pos < self._expected_end:
                    raise ConnectionError(f"connection closed at byte {self.net_pos} of {self._expected_end}")
                if not data:
                    self._eof = True
                self.net_pos += len(data)
                return data
            except (FileNotFoundError, AddressRefused):  # not worth a retry
                raise
            except Exception as e:  # noqa: BLE001 - any network error is retried from net_pos
                self._close_resp()
                failures += 1
                if failures > self.retries:
                    raise ConnectionError(f"{self.url}: giving up at byte {self.net_pos} after {self.retries} retries: {e}") from e
                if self.stats is not None:
                    self.stats.retries += 1
                wait = min(30.0, self.backoff * 2 ** (failures - 1))
                log.warning("%s: %s; retrying from byte %d in %.1fs", self.url, e, self.net_pos, wait)
                time.sleep(wait)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        if self.end is not None:
            n = max(0, min(n, self.end - self.pos))
        if n == 0:
            return b""
        if self.pos < self.net_pos:  # replay from history after a backward seek
            i = len(self._hist) - (self.net_pos - self.pos)
            data = bytes(self._hist[i: i + n])
            self.pos += len(data)
            return data
        if self._eof:
            return b""
        data = self._net_read(n)
        self.pos += len(data)
        if self.history:
            self._hist += data
            if len(self._hist) > 2 * self.history:
                del self._hist[: len(self._hist) - self.history]
        return data

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._close_resp()
        self._hist = bytearray()
        super().close()


def open_source(source, config: WarcConfig | None = None, stats: ReadStats | None = None) -> BinaryIO:
    """A seekable binary stream over a local path or an http(s) URL (file objects pass through)."""
    config = config or WarcConfig()
    if hasattr(source, "read"):
        return source
    source = resolve_source(os.fspath(source))
    if is_http(source):
        return HttpRangeReader(source, timeout=config.http_timeout, retries=config.http_retries,
                               backoff=config.http_backoff, stats=stats)
    from obelics import storage

    if storage.is_remote(source):  # object storage: ranged reads of REMOTE_BLOCK_BYTES (client retries)
        return storage.open_input(source, block_size=REMOTE_BLOCK_BYTES)
    return open(source, "rb")


REMOTE_BLOCK_BYTES = 8 << 20


def read_record_at(path_or_url, offset: int, length: int, config: WarcConfig | None = None) -> bytes:
    """The bytes ``[offset, offset + length)`` of a WARC: local, a URL (a ``Range`` request, retried)
    or on object storage (one ranged read)."""
    config = config or WarcConfig()
    source = resolve_source(os.fspath(path_or_url))
    if is_http(source):
        with HttpRangeReader(source, timeout=config.http_timeout, retries=config.http_retries,
                             backoff=config.http_backoff, start=offset, end=offset + length) as r:
            data = r.readall()
    else:
        from obelics import storage

        data = storage.read_bytes(source, start=offset, length=length)
    if len(data) != length:
        raise ValueError(f"{path_or_url}: wanted {length} bytes at {offset}, got {len(data)}")
    return data


# ---------------------------------------------------------------------------------------------
# Raw WARC records with recovery
# ---------------------------------------------------------------------------------------------


class _Feeder:
    """Raw bytes of the source, with push-back of what zlib did not use and absolute positions."""

    def __init__(self, fh, block: int):
        self.fh = fh
        self.block = block
        self.buf = b""
        try:
            self.pos = fh.tell()  # absolute position of the first byte of self.buf
        except (OSError, AttributeError):
            self.pos = 0

    def take(self) -> bytes:
        if self.buf:
            data, self.buf = self.buf, b""
        else:
            data = self.fh.read(self.block)
        self.pos += len(data)
        return data

    def take_n(self, n: int) -> bytes:
        self.peek(n)
        data, self.buf = self.buf[:n], self.buf[n:]
        self.pos += len(data)
        return data

    def push_back(self, data: bytes) -> None:
        if data:
            self.buf = data + self.buf
            self.pos -= len(data)

    def peek(self, n: int) -> bytes:
        while len(self.buf) < n:
            more = self.fh.read(self.block)
            if not more:
                break
            self.buf += more
        return self.buf[:n]

    def seek(self, pos: int) -> None:
        self.fh.seek(pos)
        self.buf = b""
        self.pos = pos

    def find(self, pattern: bytes, start_offset: int = 0) -> int | None:
        """Advance to the next occurrence of ``pattern`` at or after ``pos + start_offset``; its
        absolute position, or None at the end of the stream."""
        self.take_n(start_offset)
        while True:
            i = self.buf.find(pattern)
            if i >= 0:
                self.buf = self.buf[i:]
                self.pos += i
                return self.pos
            keep = len(pattern) - 1
            drop = max(0, len(self.buf) - keep)
            self.buf = self.buf[drop:]
            self.pos += drop
            more = self.fh.read(self.block)
            if not more:
                return None
            self.buf += more


class _CorruptMember(Exception):
    pass


class _GzipMember(io.RawIOBase):
    """The decompressed bytes of one gzip member, pulled from a :class:`_Feeder` on demand."""

    def __init__(self, feeder: _Feeder, out_chunk: int = 1 << 16):
        self.feeder = feeder
        self.d = _inflate_lib.decompressobj(31)
        self.out = bytearray()
        self.done = False  # member ended (CRC checked) or the stream ended
        self.truncated = False  # the stream ended inside the member
        self.position = 0
        self.out_chunk = out_chunk

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def _inflate(self) -> bytes:
        """The next decompressed bytes (at most ``out_chunk``); sets ``done``/``truncated`` at the member's end."""
        data = self.d.unconsumed_tail or self.feeder.take()
        if not data:
            self.done = self.truncated = True
            return self.d.flush()
        try:
            out = self.d.decompress(data, self.out_chunk)
        except _INFLATE_ERRORS as e:
            raise _CorruptMember(str(e)) from None
        if self.d.eof:
            self.feeder.push_back(self.d.unused_data)
            self.done = True
        return out

    def _more(self) -> None:
        self.out += self._inflate()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            while not self.done:
                self._more()
            data = bytes(self.out)
            self.out.clear()
        else:
            while len(self.out) < n and not self.done:
                self._more()
            data = bytes(self.out[:n])
            del self.out[:n]
        self.position += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while not self.done:
            self._more()
            self.out.clear()

    def unread(self, data: bytes) -> None:
        """Give back bytes returned by :meth:`read_whole`: the next reads return them first."""
        self.out[:0] = data
        self.position -= len(data)

    def read_whole(self, cap: int) -> bytes | None:
        """The member's remaining decompressed bytes when the member ends (CRC checked) within ``cap``
        of them; else None, with what was decompressed kept for the next reads (:meth:`read`)."""
        chunk, self.out_chunk = self.out_chunk, max(self.out_chunk, 1 << 20)
        try:
            if not self.out and not self.done:
                first = self._inflate()
                if self.done and not self.truncated and len(first) <= cap:
                    # the common case, a member inflated in one call: its bytes as zlib gave them, not copied
                    # into the buffer and out again
                    self.position += len(first)
                    return first
                self.out += first
            while not self.done and len(self.out) <= cap:
                self._more()
        finally:
            self.out_chunk = chunk
        if not self.done or self.truncated or len(self.out) > cap:
            return None
        data = bytes(self.out)
        self.out.clear()
        self.position += len(data)
        return data


MEMBER_SLACK_BYTES = 1 << 16  # a member read whole may hold this much more than max_record_bytes (headers)
ONE_RECORD_PATH = True  # False: every member through ArchiveIterator (bench/bench_warc.py's baseline)


def _record_loader() -> ArcWarcRecordLoader:
    """The record loader ``ArchiveIterator(member)`` uses (its defaults: no HTTP verification, ARC as ARC)."""
    return ArcWarcRecordLoader(verify_http=False, arc2warc=False)


_WARC_VERSIONS = tuple(v.encode() for v in ArcWarcRecordLoader.WARC_TYPES)
_HEAD_END = b"\r\n\r\n"
_ODD_BYTES = bytes([*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0x100)])  # controls, non-ASCII
_PLAIN_BYTES = bytes(b for b in range(256) if b not in _ODD_BYTES)


def _odd_header(head: bytes) -> bool:
    """Whether a header block holds a control character, a non-ASCII byte or a continuation line: one
    ``translate`` pass and two substring searches, where a regex tried a match at every byte."""
    return bool(head.translate(None, _PLAIN_BYTES)) or b"\r\n " in head or b"\r\n\t" in head


class _TypedRecord:
    """A record the readers skip by its WARC-Type alone (requests, metadata, revisits, ...): ``rec_type`` is
    set, ``http_headers`` is None, and anything else asked of it is warcio's record, parsed then."""

    format = "warc"
    http_headers = None

    def __init__(self, rec_type: str | None, data: bytes, loader: ArcWarcRecordLoader):
        self.rec_type, self._data, self._loader = rec_type, data, loader

    def __getattr__(self, name):
        rec = self.__dict__.get("_rec")
        if rec is None:
            rec = self.__dict__["_rec"] = self._loader.parse_record_stream(io.BytesIO(self._data), no_record_parse=True)
        return getattr(rec, name)


def _typed_record(data: bytes, loader: ArcWarcRecordLoader) -> _TypedRecord | None:
    """A :class:`_TypedRecord` for a member holding exactly one well-formed record of another type than
    ``response``, read from its two header lines that matter (``WARC-Type``, ``Content-Length``); None when it
    is a response or its header block is not plain (then :func:`_one_record` asks warcio).

    Hand-written because warcio parses every header line in Python (about 11 µs a record, most of the reader's
    work after inflating) for records of which the readers use one value. Plain means ASCII without control
    characters, a WARC status line and no continuation lines: there warcio's parse gives exactly these values
    (first header of that name, value stripped), so the type and length are the ones ``ArchiveIterator`` sees.
    """
    end = data.find(_HEAD_END, 0, 1 << 16)
    if end < 0:
        return None
    head = _head_values(data, 0, end, _TYPED_NAMES)
    if head is None or not data[:min(end, 16)].upper().startswith(_WARC_VERSIONS):
        return None
    rec_type, declared = head[1]
    if rec_type == "response" or declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        return None
    body = end + len(_HEAD_END)
    if length < 0 or len(data) < body + length or data[body + length:].strip():
        return None
    return _TypedRecord(rec_type, data, loader)


_WARC_STATUS_LINES = frozenset(ArcWarcRecordLoader.WARC_TYPES)


def _plain_head(head: bytes) -> bool:
    """ASCII without controls, no continuation line, every CR followed by LF and every LF after a CR: where
    warcio's line-by-line parse reads exactly the lines of ``head.split(b"\\r\\n")``."""
    return not _odd_header(head) and head.count(b"\r") == head.count(b"\n") == head.count(b"\r\n")


def _header_pairs(lines: list[str]) -> list[tuple[str, str]]:
    """warcio's ``StatusAndHeadersParser.parse`` header loop over plain lines (no continuation, none empty):
    a line is stripped at its end, split at its first colon (a line without one is dropped), the name
    stripped of trailing blanks and tabs, the value of leading whitespace."""
    out = []
    for line in lines:
        name, colon, value = line.rstrip().partition(":")
        if colon:
            out.append((name.rstrip(" \t"), value.lstrip()))
    return out


def _plain_block_python(data: bytes, start: int, end: int) -> tuple | None:
    """``(first line, [(name, value), ...], {lower-cased name: its first value})`` of the header block
    ``data[start:end]`` when it is plain (:func:`_plain_head`), else None; the lines read by warcio's rules
    (:func:`_header_pairs`). The reference of the compiled ``_walk.header_block``, and the fallback."""
    head = data[start:end]
    if not _plain_head(head):
        return None
    lines = head.decode("ascii").split("\r\n")
    pairs = _header_pairs(lines[1:])
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name.lower(), value)
    return lines[0], pairs, first


def _head_values_python(data: bytes, start: int, end: int, names: tuple[bytes, ...]) -> tuple | None:
    """``(first line, [the first value of each of names, or None])`` of a plain block (:func:`_plain_block_python`),
    else None; ``names`` lower-case ASCII bytes. The reference of ``_walk.header_values``, and the fallback."""
    block = _plain_block_python(data, start, end)
    return None if block is None else (block[0], [block[2].get(n.decode("ascii")) for n in names])


_TYPED_NAMES = (b"warc-type", b"content-length")
_BLOCK: list = []


def _compiled_block():
    if not _BLOCK:
        from obelics.budget import _compiled

        block, values = _compiled("header_block"), _compiled("header_values")
        _BLOCK[:] = [block, values] if block and values else [_plain_block_python, _head_values_python]
    return _BLOCK


def _plain_block(data: bytes, start: int, end: int) -> tuple | None:
    """:func:`_plain_block_python`, compiled where the walk is built (``_walk.header_block``, one pass in C)."""
    return _compiled_block()[0](data, start, end)


def _head_values(data: bytes, start: int, end: int, names: tuple[bytes, ...]) -> tuple | None:
    """:func:`_head_values_python`, compiled where the walk is built (``_walk.header_values``: only the wanted
    values made, ~1 µs instead of ~3 for a request's or a revisit's block of ~10 lines)."""
    return _compiled_block()[1](data, start, end, names)


def _warc_head(data: bytes) -> tuple[int, tuple | None]:
    """Where a member's WARC header block ends (-1: not in its first 64 KiB) and the block's
    :func:`_plain_block` (None: no end, or not plain)."""
    end = data.find(_HEAD_END, 0, 1 << 16)
    return end, (_plain_block(data, 0, end) if end >= 0 else None)


class _PlainHeaders(StatusAndHeaders):
    """warcio's ``StatusAndHeaders`` of a plain block whose :meth:`get_header` is a dict look-up of each name's
    first value, not a scan lower-casing every name (~17 look-ups a page, a fifth of the readers' processing).
    warcio's own edits (``replace_header``, as ``_ensure_target_uri_format`` does for a ``<URI>``,
    ``add_header``, ``remove_header``) drop the dict, made again from ``headers`` at the next look-up. The
    reader's records are its own; nothing edits ``headers`` in place."""

    def get_header(self, name, default_value=None):
        first = self._first
        if first is None:
            first = self._first = {}
            for k, v in self.headers:
                first.setdefault(k.lower(), v)
        return first.get(name.lower(), default_value)

    def add_header(self, name, value):
        self._first = None
        return StatusAndHeaders.add_header(self, name, value)

    def replace_header(self, name, value):
        self._first = None
        return StatusAndHeaders.replace_header(self, name, value)

    def remove_header(self, name):
        self._first = None
        return StatusAndHeaders.remove_header(self, name)


def _headers(statusline: str, headers: list, protocol: str, total_len: int, first: dict | None = None) -> StatusAndHeaders:
    """A ``StatusAndHeaders`` with these fields, as its constructor sets them for a list of str pairs
    (the constructor would copy the list through ``headers_to_str_headers`` again); a :class:`_PlainHeaders`
    with ``first`` (each lower-cased name's first value in ``headers``) when given."""
    sh = StatusAndHeaders.__new__(StatusAndHeaders) if first is None else _PlainHeaders.__new__(_PlainHeaders)
    sh.statusline, sh.headers, sh.protocol, sh.total_len, sh.headers_buff = statusline, headers, protocol, total_len, None
    if first is not None:
        sh._first = first
    return sh


def _response_record(data: bytes, loader: ArcWarcRecordLoader):
    """The record ``_one_record`` makes of a member holding one well-formed ``response`` record with an
    ``http(s):`` target, whose WARC and HTTP header blocks are both plain (:func:`_plain_head`); else None
    (then warcio parses it, as before).

    Hand-written because warcio parses each header line with several Python calls (about 60 µs for a
    response's two blocks, a tenth of the op's time a page); on plain blocks the line rules of its
    ``StatusAndHeadersParser.parse`` (no verification for HTTP; the WARC status line one of its versions)
    are a split and a loop, and the record is built from the same parts ``parse_record_stream`` builds it
    from (tested field by field against warcio on every member of the shared WARCs and on odd headers).
    """
    end, block = _warc_head(data)
    if block is None or block[0] not in _WARC_STATUS_LINES or not block[1]:
        return None
    rec_headers = _headers("", block[1], block[0], end + len(_HEAD_END), block[2])
    uri = rec_headers.get_header("WARC-Target-URI")
    if rec_headers.get_header("WARC-Type") != "response" or loader.http_parser.verify or uri is None \
            or " " in uri:  # a URI with a blank: warcio escapes it and logs a warning, on its own path
        return None
    uri = loader._ensure_target_uri_format(rec_headers)  # warcio's own mending of a <URI>
    declared = rec_headers.get_header("Content-Length")
    try:
        length = int(declared)
    except (TypeError, ValueError):
        return None
    body = end + len(_HEAD_END)
    if length <= 0 or not uri.startswith(loader.HTTP_SCHEMES) or len(data) < body + length \
            or data[body + length:].strip():
        return None
    http_end = data.find(_HEAD_END, body, body + length)
    if http_end < 0:
        return None
    http_block = _plain_block(data, body, http_end)
    if http_block is None:
        return None
    status = http_block[0].rstrip()
    if not status:  # warcio stops at an empty status line: its other lines are payload
        return None
    protocol_status = status.split(" ", 1)
    http_len = http_end + len(_HEAD_END) - body
    http_headers = _headers(protocol_status[1].strip() if len(protocol_status) > 1 else "",
                            http_block[1], protocol_status[0], http_len, http_block[2])
    stream = io.BytesIO(data)
    stream.seek(body + http_len)
    raw = LimitReader(stream, length)
    raw.limit = length - http_len  # as if the HTTP headers had been read through it
    rec = _ResponseRecord("warc", "response", rec_headers, raw, http_headers, rec_headers.get_header("Content-Type"),
                          length, payload_length=length - http_len if http_headers else -1,
                          digest_checker=DigestChecker(False))
    rec.member_data, rec.payload_start, rec.payload_end = data, body + http_len, body + length
    return rec


class _ResponseRecord(ArcWarcRecord):
    """The record :func:`_response_record` makes: warcio's, plus where its HTTP payload lies in the member's
    bytes (``member_data[payload_start:payload_end]``, what its ``raw_stream`` reads), for :func:`_read_payload`."""

    member_data: bytes
    payload_start: int
    payload_end: int


_CRLF = b"\r\n"


def _dechunked(data: bytes, start: int, end: int, limit: int) -> bytes | None:
    """What warcio's ``ChunkedDataReader`` (no content decoding) reads of ``data[start:end]``, at most ``limit``
    bytes, where it is sure: chunks each a size line (at most 64 bytes with its CRLF, hex up to 2**31, as its
    ``_try_decode`` reads it), its bytes and a CRLF, up to a zero size line and a CRLF; a size line it cannot
    decode (most often the first: a page stored de-chunked under its ``Transfer-Encoding: chunked``) and it
    gives that line and the rest as they are. None for anything else (then warcio reads it).

    Hand-written because warcio reads a chunked body through three Python readers (~60 µs a page, a quarter of
    the pages); here the result is a few slices. Tested equal to warcio on the shared WARCs' chunked pages and
    on generated well- and ill-formed chunkings."""
    parts = []
    got = 0
    pos = start
    while True:
        nl = data.find(b"\n", pos, min(pos + 64, end))
        try:
            if nl < 0 or nl == pos or data[nl - 1] != 13:  # readline(64) not ending in CRLF
                raise ValueError
            size = int(data[pos:nl - 1].split(b";")[0], 16)
            if size > 2 ** 31:
                raise ValueError
        except ValueError:  # warcio: this line and all after it, not de-chunked
            parts.append(data[pos:min(end, pos + limit - got)])
            return b"".join(parts)
        if size < 0:
            return None
        pos = nl + 1
        if not size:
            if data[pos:min(pos + 2, end)] != _CRLF:
                return None
            return b"".join(parts)
        stop = pos + size
        if stop + 2 > end or data[stop:stop + 2] != _CRLF:
            return None
        if got + size >= limit:  # warcio stops reading here; it reads the rest of this chunk first
            parts.append(data[pos:pos + limit - got])
            return b"".join(parts)
        parts.append(data[pos:stop])
        got += size
        pos = stop + 2


def _one_record(data: bytes, loader: ArcWarcRecordLoader):
    """warcio's record of a gzip member's bytes when they are exactly one well-formed WARC record: a valid
    ``Content-Length`` and nothing but blank lines after the block. Else None: the member then goes through
    :class:`ArchiveIterator` (several records, a bad length, damage: its warnings, errors and counts).

    This is what ``ArchiveIterator`` yields for such a member, parsed by the same loader, without its
    per-line Python reads (a ``BytesIO`` here) and with the HTTP headers parsed for ``response`` records
    only: the readers decide every other record by its WARC-Type alone, so a request's or a revisit's HTTP
    headers are never needed (their parse cannot fail: no verification, revisits may be empty).
    """
    if not data.startswith(b"WARC/"):
        return None
    return _response_record(data, loader) or _warcio_record(data, loader)


def _warcio_record(data: bytes, loader: ArcWarcRecordLoader):
    """:func:`_one_record` by warcio's own parse (its record, or None)."""
    stream = io.BytesIO(data)
    try:
        rec = loader.parse_record_stream(stream, known_format=None, no_record_parse=True)
        if rec.format != "warc":
            return None
        declared = rec.rec_headers.get_header("Content-Length")
        if declared is None or rec.length != int(declared):  # warcio read a bad length as 0
            return None
        end = stream.tell() + rec.length
        if len(data) < end or data[end:].strip():  # short, or more than blank lines after the record
            return None
        if rec.rec_type == "response":  # = parse_record_stream's HTTP part, for this record type only
            raw = rec.raw_stream
            uri = rec.rec_headers.get_header("WARC-Target-URI")
            rec.http_headers = loader.load_http_headers(rec.rec_type, uri, raw, rec.length)
            if rec.length and rec.http_headers:
                rec.payload_length = rec.length - raw.tell()
    except Exception:  # noqa: BLE001 - ArchiveIterator meets the same error and counts it
        return None
    return rec


def _looks_like_member(feeder: _Feeder) -> bool:
    """Does the gzip member at the feeder's position decompress to ``WARC/``?"""
    head = feeder.peek(4096)
    if not head.startswith(GZIP_MAGIC):
        return False
    try:
        d = zlib.decompressobj(31)
        out = d.decompress(head, 16)
    except zlib.error:
        return False
    return out.startswith(b"WARC/")


def _resync_gzip(feeder: _Feeder, after: int, stats: ReadStats) -> bool:
    """Move to the first valid gzip member starting after byte ``after``; False at the end."""
    feeder.seek(after + 1)
    pos = feeder.find(GZIP_MAGIC)
    while pos is not None:
        if _looks_like_member(feeder):
            stats.recovered["resync_bytes"] += pos - after
            return True
        pos = feeder.find(GZIP_MAGIC, 1)
    return False


def _scan_gzip(fh, stats: ReadStats, config: WarcConfig, process) -> Iterator:
    """Results of ``process(record, member)`` for every record of a gzip-member WARC, handed out
    once the member's CRC has checked (or, for a member cut by the end of the file, once no later
    member exists)."""
    feeder = _Feeder(fh, config.read_block_bytes)
    loader = _record_loader()
    cap = config.max_record_bytes + MEMBER_SLACK_BYTES
    while True:
        head = feeder.peek(3)
        if not head:
            return
        start = feeder.pos
        if head != GZIP_MAGIC[: len(head)] or len(head) < 3:
            # bytes that are not a gzip header: skip to the next member
            stats.skip("garbage_between_members")
            if not _resync_gzip(feeder, start, stats):
                return
            continue
        member = _GzipMember(feeder)
        pending: list = []
        try:
            try:
                data = member.read_whole(cap)
            except _CorruptMember:  # read it again below, so the damage is met where ArchiveIterator meets it
                feeder.seek(start)
                member, data = _GzipMember(feeder), None
            rec = None
            if data is not None and ONE_RECORD_PATH:
                rec = _typed_record(data, loader) or _one_record(data, loader)
            if rec is not None:  # the common case: one well-formed record (see _one_record)
                r = process(rec, member)
                if r is not None:
                    pending.append(r)
            else:
                if data is not None:
                    member.unread(data)
                it = ArchiveIterator(member)
                for rec in it:
                    r = process(rec, member)
                    if r is not None:
                        pending.append(r)
                    if len(pending) > 1 and sum(len(x.payload) for x in pending) > 4 * config.max_record_bytes:
                        # a whole-file gzip (one member, many records): do not hold them all
                        yield from pending
                        pending = []
                member.drain()
        except _CorruptMember as e:
            stats.skip("corrupt_gzip_member")
            log.warning("%s: corrupt gzip member at byte %d (%s); resyncing", getattr(fh, "name", "warc"), start, e)
            if not _resync_gzip(feeder, start, stats):
                return
            continue
        except Exception as e:  # noqa: BLE001 - warcio rejected the record: skip the member
            stats.skip("corrupt_record")
            log.warning("%s: unreadable record in member at byte %d (%r); skipping it", getattr(fh, "name", "warc"), start, e)
            try:
                member.drain()
            except _CorruptMember:
                if not _resync_gzip(feeder, start, stats):
                    return
            continue
        end = feeder.pos
        if member.truncated:
            # the stream ended inside this member: a member cut in half that ran into the next one
            # is corrupt; only a member cut by the end of the file is a (clipped) record.
            if _resync_gzip(feeder, start, stats):
                stats.skip("corrupt_gzip_member")
                continue
            stats.recovered["truncated_record"] += len(pending)
            if not pending:  # the cut record was not one we keep (an image, a request): the loss is counted
                stats.skip("input_truncated")
            for r in pending:
                _set_range(r, start, end - start)
            yield from pending
            return
        for r in pending:
            _set_range(r, start, end - start)
        yield from pending


def _set_range(result, offset: int, length: int) -> None:
    if isinstance(result, (HtmlRecord, ImageRecord)):
        result.warc_record_offset = offset
        result.warc_record_length = length


def _failed_record_successor(fh, last_end: int, block: int) -> int | None:
    """After warcio failed on the record that starts at ``last_end`` (after blank lines): the start
    of the next ``WARC/`` line past that record's first byte, or None."""
    feeder = _Feeder(fh, block)
    feeder.seek(last_end)
    while (c := feeder.peek(1)) and c in b"\r\n":
        feeder.take_n(1)
    pos = feeder.find(b"\nWARC/")
    return None if pos is None else pos + 1


def _scan_plain(fh, stats: ReadStats, config: WarcConfig, process) -> Iterator:
    """Results of ``process(record, None)`` for every record of an uncompressed WARC."""
    start = fh.tell()
    while True:
        fh.seek(start)
        it = ArchiveIterator(fh)
        last_end = start
        try:
            for rec in it:
                r = process(rec, None)
                off, length = it.get_record_offset(), it.get_record_length()
                last_end = off + length
                if r is not None:
                    _set_range(r, off, length)
                    yield r
            return
        except Exception as e:  # noqa: BLE001 - warcio rejected a record: resync at the next WARC/ line
            stats.skip("corrupt_record")
            log.warning("%s: unreadable record after byte %d (%r); resyncing", getattr(fh, "name", "warc"), last_end, e)
            nxt = _failed_record_successor(fh, last_end, config.read_block_bytes)
            if nxt is None:
                return
            start = nxt


def _scan(fh, stats: ReadStats, config: WarcConfig, process) -> Iterator:
    head = fh.read(3)
    fh.seek(fh.tell() - len(head))
    if head.startswith(GZIP_MAGIC):
        yield from _scan_gzip(fh, stats, config, process)
    else:
        yield from _scan_plain(fh, stats, config, process)


# ---------------------------------------------------------------------------------------------
# HTML and image records
# ---------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.I)
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|title|meta)", re.I | re.S)
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"RIFF", b"\x00\x00\x01\x00")
# WHATWG Encoding: these labels mean windows-1252; utf-16 in <meta> means utf-8.
_CHARSET_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252"}


def normalize_charset(name: str | None) -> str | None:
    """A Python codec name for a charset label, or None if unknown."""
    if not name:
        return None
    name = name.strip().strip("'\"").lower()
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return _CHARSET_ALIASES.get(codec, codec)


def _content_type(headers) -> tuple[str, str | None]:
    ct = headers.get_header("Content-Type") if headers else None
    if not ct:
        return "", None
    mime, _, params = ct.partition(";")
    m = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", params, re.I)
    return mime.strip().lower(), (m.group(1) if m else None)


def meta_charset(payload: bytes, prescan: int = 4096) -> str | None:
    """The charset declared by ``<meta charset>`` / ``<meta http-equiv>`` in the first bytes."""
    m = _META_CHARSET.search(payload[:prescan])
    if not m:
        return None
    cs = normalize_charset(m.group(1).decode("ascii", "ignore"))
    if cs and cs.startswith(("utf_16", "utf-16")):
        return "utf-8"  # a page that can declare itself in ASCII is not UTF-16 (WHATWG)
    return cs


def detect_charset(payload: bytes) -> str:
    """charset-normalizer's best guess (utf-8 when it has none)."""
    if payload[:3] == codecs.BOM_UTF8:
        return "utf-8"
    if payload[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    try:
        payload.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(payload[:65536]).best()
    return normalize_charset(best.encoding) if best is not None else "utf-8"


def choose_charset(payload: bytes, http_charset: str | None, identified: str | None, prescan: int = 4096) -> str:
    """HTTP header, then WARC-Identified-Content-Charset, then <meta>, then detection."""
    for cs in (http_charset, identified):
        cs = normalize_charset(cs)
        if cs:
            return cs
    return meta_charset(payload, prescan) or detect_charset(payload)


_CONTROL_BYTES = bytes([*range(0, 9), 11, *range(14, 32), 127])
_NON_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)


def is_binary(payload: bytes, control_ratio: float = 0.05, charset: str | None = None) -> bool:
    """Bytes that cannot be an HTML page: a known binary signature, or more C0 control bytes (NUL,
    ...) in the first 8 KiB than ``control_ratio`` (text has almost none; compressed data ~12%)."""
    head = payload[:8192]
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or (charset or "").startswith(("utf-16", "utf_16", "utf-32")):
        return False
    if head.startswith(_BINARY_MAGIC):
        return True
    return bool(head) and len(head.translate(None, _NON_CONTROL)) > control_ratio * len(head)


def _http_headers(rec) -> dict[str, str | list[str]]:
    """Lower-cased names; a repeated header is the list of its lines (X-Robots-Tag scopes a user agent
    per line: joining lines would carry ``googlebot:`` over to the next line's directives)."""
    if not rec.http_headers:
        return {}
    out: dict[str, str | list[str]] = {}
    for k, v in rec.http_headers.headers:
        k = k.lower()
        if k not in out:
            out[k] = v
        elif isinstance(out[k], list):
            out[k].append(v)
        else:
            out[k] = [out[k], v]
    return out


def _capture_date(rec) -> str | None:
    return rec.rec_headers.get_header("WARC-Date") or None


def _target_uri(rec) -> str:
    return (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")


def _block_length(rec) -> int:
    try:
        return int(rec.rec_headers.get_header("Content-Length") or 0)
    except ValueError:
        return 0


def _read_payload(rec, limit: int) -> bytes | None:
    """The HTTP body (de-chunked, content-decoded), or None if it decodes to more than ``limit``."""
    if rec.__class__ is _ResponseRecord:  # its bytes at hand: a plain or a well-chunked body without warcio's readers
        headers = rec.http_headers
        if headers.get_header("content-encoding") is None:
            chunked = headers.get_header("transfer-encoding") == "chunked"
            data, start, end = rec.member_data, rec.payload_start, rec.payload_end
            data = _dechunked(data, start, end, limit + 1) if chunked else data[start:min(end, start + limit + 1)]
            if data is not None:
                return None if len(data) > limit else data
    stream = rec.content_stream()
    data = stream.read(limit + 1)
    if len(data) > limit:
        return None
    return data


def _status(rec) -> int:
    try:
        return int(rec.http_headers.get_statuscode())
    except (TypeError, ValueError, AttributeError):
        return 0


def _html_processor(filename: str, config: WarcConfig, stats: ReadStats):
    html_types = {t.lower() for t in config.html_mime_types}
    accept = set(config.accept_status)

    def process(rec, member) -> HtmlRecord | None:
        stats.records += 1
        rtype = rec.rec_type
        if rtype != "response":
            stats.skip(rtype or "unknown_type")
            return None
        if not rec.http_headers:
            stats.skip("not_http")
            return None
        if _block_length(rec) > config.max_record_bytes:
            stats.skip("oversized")
            return None
        mime, http_cs = _content_type(rec.http_headers)
        if mime and mime not in html_types:
            stats.skip("image" if mime.startswith("image/") else "not_html")
            return None
        status = _status(rec)
        if accept and status not in accept:
            stats.skip("http_status")
            return None
        payload = _read_payload(rec, config.max_record_bytes)
        if payload is None:
            stats.skip("oversized")
            return None
        if not mime and not (config.sniff_untyped and _HTML_START.match(payload[:1024])):
            stats.skip("not_html")
            return None
        if not payload or payload.isspace():  # = not payload.strip(), without copying the page
            if config.skip_empty:
                stats.skip("empty_payload")
                return None
        identified = rec.rec_headers.get_header("WARC-Identified-Content-Charset")
        if is_binary(payload, config.binary_control_ratio, normalize_charset(http_cs)):
            stats.skip("binary_payload")
            return None
        charset = choose_charset(payload, http_cs, identified, config.meta_prescan_bytes)
        stats.html_records += 1
        stats.bytes_read += len(payload)
        return HtmlRecord(
            url=_target_uri(rec), payload=payload, charset=charset, warc_filename=filename,
            warc_record_offset=0, warc_record_length=0, capture_date=_capture_date(rec),
            http_charset=http_cs, identified_charset=identified, http_headers=_http_headers(rec),
            record_id=rec.rec_headers.get_header("WARC-Record-ID"),
        )

    return process


def _image_processor(filename: str, config: WarcConfig, stats: ReadStats):
    def process(rec, member) -> ImageRecord | None:
        stats.records += 1
        if rec.rec_type != "response":
            stats.skip(rec.rec_type or "unknown_type")
            return None
        if not rec.http_headers:
            stats.skip("not_http")
            return None
        mime, _ = _content_type(rec.http_headers)
        if not mime.startswith("image/"):
            stats.skip("not_image")
            return None
        if _block_length(rec) > config.max_record_bytes:
            stats.skip("oversized")
            return None
        payload = _read_payload(rec, config.max_record_bytes)
        if payload is None:
            stats.skip("oversized")
            return None
        stats.bytes_read += len(payload)
        return ImageRecord(
            url=_target_uri(rec), payload=payload, content_type=mime, http_status=_status(rec),
            http_headers=_http_headers(rec), warc_filename=filename, capture_date=_capture_date(rec),
        )

    return process


def _iter(source, config, stats, make_processor, warc_filename) -> Iterator:
    config = config or WarcConfig()
    stats = stats if stats is not None else ReadStats()
    if warc_filename is None:
        name = getattr(source, "name", None) if hasattr(source, "read") else source
        warc_filename = warc_filename_of(name) if isinstance(name, (str, Path)) else ""
    filename = warc_filename
    fh = open_source(source, config, stats)
    own = fh is not source
    try:
        yield from _scan(fh, stats, config, make_processor(filename, config, stats))
    finally:
        if own:
            fh.close()


def iter_html_records(source: str | Path | BinaryIO, config: WarcConfig | None = None,
                      stats: ReadStats | None = None, warc_filename: str | None = None) -> Iterator[HtmlRecord]:
    """Yield every HTML ``response`` record of a WARC (path, URL or binary file object).

    Skips (counted in ``stats.skipped`` by reason): non-response records (``request``, ``metadata``,
    ``revisit``, ``warcinfo``, ...), non-HTTP responses, other MIME types, statuses outside
    ``accept_status``, records over ``max_record_bytes``, empty and binary payloads, corrupt records
    and gzip members.
    """
    yield from _iter(source, config, stats, _html_processor, warc_filename)


def iter_image_records(source: str | Path | BinaryIO, config: WarcConfig | None = None,
                       stats: ReadStats | None = None, warc_filename: str | None = None) -> Iterator[ImageRecord]:
    """Yield every ``image/*`` response record of a WARC (any HTTP status; see ``http_status``)."""
    yield from _iter(source, config, stats, _image_processor, warc_filename)


def html_record_at(path_or_url, offset: int, length: int, config: WarcConfig | None = None,
                   stats: ReadStats | None = None) -> HtmlRecord | None:
    """The HTML record stored at a WARC pointer (``warc_filename``, offset, length), or None."""
    data = read_record_at(path_or_url, offset, length, config)
    for rec in iter_html_records(io.BytesIO(data), config, stats, warc_filename=warc_filename_of(path_or_url)):
        rec.warc_record_offset = offset
        rec.warc_record_length = length
        return rec
    return None
