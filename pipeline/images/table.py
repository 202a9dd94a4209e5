"""The image table: one row per unique image URL, whatever the source (img2dataset or a WARC).

Columns (:data:`IMAGE_TABLE_SCHEMA`): ``url`` (the key), ``status`` (``success`` or ``failed``),
``reason`` (why it failed, a short stable string counted by the funnel: ``http_404``, ``timeout``,
``optout:x-robots-tag``, ``not_image``, ``truncated``, ``too_large_bytes``, ...), ``error_message``
(the raw message), ``http_status``, ``final_url`` (after redirects, when known), ``width``,
``height``, ``format`` (PIL's, lower-cased), ``sha256`` and ``num_bytes`` of the stored bytes,
``bytes`` (the image as stored: the original bytes unless the profile re-encodes), ``headers`` (a JSON
object of the response headers opt-out needs, lower-cased names) and ``source`` (``web`` or ``warc``).

A table is a folder of Parquet parts, each sorted by URL, written atomically, carrying its URL range
in the footer so that :meth:`ImageTable.lookup` only opens the parts that can hold a URL.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from obelics import storage
from pipeline.images.config import ImagesConfig

IMAGE_TABLE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("error_message", pa.string()),
        ("http_status", pa.int32()),
        ("final_url", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("sha256", pa.string()),
        ("num_bytes", pa.int64()),
        ("bytes", pa.binary()),
        ("headers", pa.string()),
        ("source", pa.string()),
    ]
)
META_COLUMNS = [n for n in IMAGE_TABLE_SCHEMA.names if n != "bytes"]

# File extension per PIL format (WebDataset member names, file names).
FORMAT_EXT = {"jpeg": "jpg", "mpo": "jpg", "png": "png", "webp": "webp", "gif": "gif", "bmp": "bmp",
              "tiff": "tif", "ico": "ico", "avif": "avif", "heif": "heic", "jpeg2000": "jp2", "svg": "svg"}


def ext_for_format(fmt: str | None) -> str:
    """The file extension for a PIL format name (``jpeg`` -> ``jpg``); ``bin`` if unknown."""
    return FORMAT_EXT.get((fmt or "").lower(), (fmt or "bin").lower())


@dataclass
class Probe:
    """What the bytes are: format and size, or why they are not a usable image."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    reason: str | None = None


def is_truncated(data: bytes, fmt: str) -> bool | None:
    """Whether ``data`` ends before the format's end marker; ``None`` when the format has no cheap check.

    Hand-written because PIL only notices truncation by decoding every pixel, which costs more than
    the download itself on a fast link; the end markers below are those of the format specifications.
    """
    if fmt in ("jpeg", "mpo"):
        return b"\xff\xd9" not in data[-4096:]
    if fmt == "png":
        return b"IEND" not in data[-64:]
    if fmt == "gif":
        return not data.rstrip(b"\x00\r\n ").endswith(b";")
    if fmt == "webp":
        return len(data) < 12 or int.from_bytes(data[4:8], "little") + 8 > len(data)
    return None


def probe_bytes(data: bytes | None, check_truncation: bool = True, max_pixels: int | None = None,
                header: tuple[str, int, int] | None = None) -> Probe:
    """Identify an image from its bytes with PIL (header only, no pixel decode unless needed).

    ``header``: ``(format, width, height)`` that PIL's ``Image.open`` already read from these same bytes in
    this process (the download's pixel check): they are not opened a second time.
    """
    if not data:
        return Probe(reason="empty")
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return Probe(format="svg", reason="svg")
    img = None
    if header is not None:
        fmt, width, height = header
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                fmt = (img.format or "").lower()
                width, height = img.size
        except Image.DecompressionBombError:
            return Probe(reason="too_many_pixels")
        except Exception:  # noqa: BLE001 - PIL raises many types for non-images
            return Probe(reason="not_image")
    probe = Probe(format=fmt, width=width, height=height)
    if max_pixels is not None and width * height > max_pixels:
        probe.reason = "too_many_pixels"
    elif check_truncation:
        truncated = is_truncated(data, fmt)
        if truncated is None:  # no cheap marker: decode (rare formats only)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    (img or Image.open(io.BytesIO(data))).load()
                truncated = False
            except Exception:  # noqa: BLE001
                truncated = True
        if truncated:
            probe.reason = "truncated"
    return probe


_ERROR_PATTERNS = [
    (re.compile(r"address_refused:(\w+)"), lambda m: f"address_refused:{m.group(1)}"),
    (re.compile(r"download_too_large"), lambda m: "too_large_bytes"),
    # before "HTTP Error": urllib labels a loop "HTTP Error 302: ... would lead to an infinite loop"
    (re.compile(r"infinite loop|redirect", re.I), lambda m: "redirect_loop"),
    (re.compile(r"HTTP Error (\d{3})"), lambda m: f"http_{m.group(1)}"),
    (re.compile(r"X-Robots-Tag", re.I), lambda m: "optout:x-robots-tag"),
    (re.compile(r"timed out|timeout", re.I), lambda m: "timeout"),
    (re.compile(r"IncompleteRead", re.I), lambda m: "incomplete_read"),
    (re.compile(r"Connection refused", re.I), lambda m: "connection_refused"),
    (re.compile(r"Connection reset|Remote end closed|RemoteDisconnected|BadStatusLine", re.I),
     lambda m: "connection_reset"),
    (re.compile(r"Name or service not known|nodename nor servname|getaddrinfo|No address", re.I),
     lambda m: "dns"),
    (re.compile(r"CERTIFICATE|SSL", re.I), lambda m: "tls"),
    (re.compile(r"unknown url type|no host given|InvalidURL|Invalid URL", re.I), lambda m: "bad_url"),
    (re.compile(r"Image decoding error|cannot identify", re.I), lambda m: "not_image"),
    (re.compile(r"image too small", re.I), lambda m: "too_small"),
    (re.compile(r"area too large", re.I), lambda m: "too_many_pixels"),
    (re.compile(r"aspect ratio", re.I), lambda m: "aspect_ratio"),
]


def reason_from_error(message: str | None) -> str:
    """A short, stable reason for a raw download error message (img2dataset's or urllib's)."""
    if not message:
        return "download_error"
    for pattern, make in _ERROR_PATTERNS:
        m = pattern.search(message)
        if m:
            return make(m)
    return "download_error"


def make_row(url: str, data: bytes | None, cfg: ImagesConfig, *, error: str | None = None,
             http_status: int | None = None, headers: Mapping[str, str] | None = None,
             final_url: str | None = None, sha256: str | None = None, source: str = "web",
             reason: str | None = None, header: tuple[str, int, int] | None = None) -> dict:
    """One image-table row from a download outcome: bytes (success) or an error message (failure);
    ``header``: what PIL already read from ``data`` (:func:`probe_bytes`)."""
    row = {"url": url, "status": "failed", "reason": reason, "error_message": error,
           "http_status": http_status, "final_url": final_url, "width": None, "height": None,
           "format": None, "sha256": None, "num_bytes": None, "bytes": None,
           "headers": json.dumps(dict(headers), sort_keys=True) if headers else None, "source": source}
    if reason is None and error is None and data is None:
        row["reason"] = "empty"
    if row["reason"] is not None or error is not None:
        row["reason"] = row["reason"] or reason_from_error(error)
        return row
    row["num_bytes"] = len(data)
    if cfg.max_bytes is not None and len(data) > cfg.max_bytes:
        row["reason"] = "too_large_bytes"
        return row
    probe = probe_bytes(data, cfg.check_truncation, cfg.max_pixels, header)
    row.update(format=probe.format, width=probe.width, height=probe.height)
    if probe.reason:
        row["reason"] = probe.reason
        return row
    row.update(status="success", bytes=data, sha256=sha256 or hashlib.sha256(data).hexdigest())
    return row


def rows_to_table(rows: Iterable[dict]) -> pa.Table:
    """Rows as an Arrow table of :data:`IMAGE_TABLE_SCHEMA`, sorted by URL (sorted as Python rows, so
    the image bytes are not copied again by an Arrow sort)."""
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["url"]), schema=IMAGE_TABLE_SCHEMA)


def reason_counts(table: pa.Table) -> Counter:
    """Failed rows by reason, plus ``success``."""
    c = Counter()
    for status, reason in zip(table.column("status").to_pylist(), table.column("reason").to_pylist()):
        c["success" if status == "success" else reason or "unknown"] += 1
    return c


class ImageTable:
    """A folder of image-table parts (``part-*.parquet``), each sorted by URL."""

    def __init__(self, folder: str | Path):
        self.folder = os.fspath(folder)  # a local folder or an object-store prefix (obelics.storage)
        self._index: list[tuple[str, str, str]] | None = None

    def part_path(self, name: str) -> str:
        return storage.join(self.folder, f"part-{name}.parquet")

    def has_part(self, name: str) -> bool:
        return storage.exists(self.part_path(name))

    def write_part(self, name: str, table: pa.Table) -> str:
        """Write one part atomically (sorted by URL, URL range in the footer)."""
        table = table.select(IMAGE_TABLE_SCHEMA.names).cast(IMAGE_TABLE_SCHEMA)
        urls = table.column("url").to_pylist()
        if any(a > b for a, b in zip(urls, urls[1:])):
            table = table.sort_by("url")
        if table.num_rows:
            urls = table.column("url")
            meta = {b"obelics.url_min": pc.min(urls).as_py().encode(),
                    b"obelics.url_max": pc.max(urls).as_py().encode()}
            table = table.replace_schema_metadata(meta)
        self._index = None
        # image bytes are already compressed: zstd on them costs CPU for nothing. Nor a dictionary: distinct
        # images (a crawl's) went through the dictionary encoder a whole row group at a time (hashed, copied
        # into its memo table, then re-encoded plain once it passed its size limit), ~2 CPU-s a 270 MB shard
        compression = {n: ("none" if n == "bytes" else "zstd") for n in IMAGE_TABLE_SCHEMA.names}
        kwargs = dict(compression=compression, use_dictionary=META_COLUMNS, row_group_size=256)
        path = self.part_path(name)
        if storage.is_remote(path):
            return storage.write_parquet_atomic(path, table, **kwargs)
        # local: Arrow's own file writer on a temporary name, then the rename. Through a Python file object
        # (storage.write_parquet_atomic) every page became a fresh Python bytes object: ~0.4 CPU-s more per
        # 280 MB part, mostly the kernel's page faults (same file bytes either way)
        import pyarrow.parquet as pq

        local = path[len("file://"):] if path.startswith("file://") else path
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        tmp = storage.temporary_sibling(local)
        try:
            pq.write_table(table, tmp, **kwargs)
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def parts(self) -> list[str]:
        return [storage.join(self.folder, n) for n in storage.listdir(self.folder)
                if n.startswith("part-") and n.endswith(".parquet")]

    def _ranges(self) -> list[tuple[str, str, str]]:
        if self._index is None:
            index = []
            for p in self.parts():
                md = storage.read_parquet_schema(p).metadata or {}
                if b"obelics.url_min" in md:
                    index.append((md[b"obelics.url_min"].decode(), md[b"obelics.url_max"].decode(), p))
            self._index = index
        return self._index

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole table (``columns=META_COLUMNS`` leaves the bytes out)."""
        parts = [storage.read_parquet(p, columns=columns) for p in self.parts()]
        schema = IMAGE_TABLE_SCHEMA if columns is None else pa.schema([IMAGE_TABLE_SCHEMA.field(c) for c in columns])
        return pa.concat_tables([t.replace_schema_metadata(None) for t in parts]) if parts else schema.empty_table()

    def lookup(self, urls: Iterable[str], with_bytes: bool = True) -> dict[str, dict]:
        """Rows for ``urls`` (those present), keyed by URL; a success wins over a failure for the same URL."""
        wanted = sorted({u for u in urls if u})
        out: dict[str, dict] = {}
        if not wanted:
            return out
        columns = None if with_bytes else META_COLUMNS
        for lo, hi, path in self._ranges():
            i, j = bisect.bisect_left(wanted, lo), bisect.bisect_right(wanted, hi)
            if i >= j:
                continue
            t = storage.read_parquet(path, columns=columns, filters=pc.field("url").isin(wanted[i:j]))
            for row in t.to_pylist():
                prev = out.get(row["url"])
                if prev is None or (prev["status"] != "success" and row["status"] == "success"):
                    out[row["url"]] = row
        return out

    def headers_by_url(self, urls: Iterable[str]) -> dict[str, dict[str, str]]:
        """The recorded response headers of ``urls`` (lower-cased names), as opt-out filters take them
        (``filters.optout.stage.optout_filter_images(headers_by_url=...)``)."""
        return {u: json.loads(r["headers"]) for u, r in self.lookup(urls, with_bytes=False).items()
                if r.get("headers")}

    def counts(self) -> Counter:
        return reason_counts(self.read(columns=["url", "status", "reason"]))
