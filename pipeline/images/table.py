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

import numpy as np
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


ROW_GROUP = 256  # rows per row group of a part


def binary_column(blobs: list[bytes | None], max_chunk: int = 2**31 - 1) -> pa.ChunkedArray:
    """``blobs`` as an Arrow binary column: per chunk one ``b"".join`` (a single allocation of the exact
    size, one copy) wrapped without a copy, and offsets from the lengths.

    Hand-made because ``pa.array(blobs, pa.binary())`` grows its buffer by doubling: on a shard of image
    bytes (hundreds of MB) the reallocations cost 4-6x the CPU of the copy itself, mostly in the kernel
    zeroing fresh (huge) pages. A chunk holds at most ``max_chunk`` bytes (32-bit offsets).
    """
    chunks, start, size = [], 0, 0
    for i, b in enumerate(blobs):
        n = len(b) if b is not None else 0
        if size + n > max_chunk and i > start:
            chunks.append(_binary_chunk(blobs[start:i]))
            start, size = i, 0
        size += n
    chunks.append(_binary_chunk(blobs[start:]))
    return pa.chunked_array(chunks, pa.binary())


def _binary_chunk(blobs: list[bytes | None], into: bytearray | None = None) -> pa.Array:
    """One binary array of ``blobs``; ``into``: a buffer to copy them into (at least their total size; the
    array is a view of it, valid until it is written over) instead of one ``b"".join``."""
    offsets = np.zeros(len(blobs) + 1, np.int32)
    np.cumsum([len(b) if b is not None else 0 for b in blobs], out=offsets[1:])
    nulls = sum(b is None for b in blobs)
    validity = pa.array([b is not None for b in blobs], pa.bool_()).buffers()[1] if nulls else None
    if into is None:
        data = pa.py_buffer(b"".join(b for b in blobs if b is not None))
    else:
        view = memoryview(into)
        for b, at in zip(blobs, offsets[:-1].tolist()):
            if b is not None:
                view[at:at + len(b)] = b
        data = pa.py_buffer(view[:int(offsets[-1])])
    return pa.Array.from_buffers(pa.binary(), len(blobs), [validity, pa.py_buffer(offsets), data], null_count=nulls)


def _write_row_groups(path: str, table: pa.Table, blobs: list[bytes | None], kwargs: dict) -> None:
    """``table`` to Parquet at ``path`` with its ``bytes`` column from ``blobs``, one row group of
    :data:`ROW_GROUP` rows at a time, each group's bytes copied into the same buffer (grown when a group
    needs more). Hand-written because Arrow's writer takes whole arrays: this keeps one group's bytes in
    memory that is reused instead of the whole part's in fresh memory. Parquet copies each page's values
    as it encodes them, so the buffer is free again once a group is written."""
    import pyarrow.parquet as pq

    if len(blobs) != table.num_rows:
        raise ValueError(f"{len(blobs)} image byte strings for {table.num_rows} rows")
    k, field = table.schema.get_field_index("bytes"), IMAGE_TABLE_SCHEMA.field("bytes")
    buf = bytearray()
    with pq.ParquetWriter(path, table.schema, **{n: v for n, v in kwargs.items() if n != "row_group_size"}) as w:
        for start in range(0, table.num_rows, ROW_GROUP):
            group = blobs[start:start + ROW_GROUP]
            need = sum(len(b) for b in group if b is not None)
            if need > len(buf):
                buf = bytearray(need)
            piece = table.slice(start, len(group))
            w.write_table(piece.set_column(k, field, _binary_chunk(group, buf)), row_group_size=ROW_GROUP)
        if not table.num_rows:
            w.write_table(table)


class ImageRows:
    """Rows of the image table looked up by URL (:meth:`lookup`): the whole table (:class:`ImageTable`) or a
    unit's joined rows (:class:`pipeline.images.join.UnitImages`)."""

    def lookup(self, urls: Iterable[str], with_bytes: bool = True) -> dict[str, dict]:
        raise NotImplementedError

    def headers_by_url(self, urls: Iterable[str]) -> dict[str, dict[str, str]]:
        """The recorded response headers of ``urls`` (lower-cased names), as opt-out filters take them
        (``filters.optout.stage.optout_filter_images(headers_by_url=...)``)."""
        return {u: json.loads(r["headers"]) for u, r in self.lookup(urls, with_bytes=False).items()
                if r.get("headers")}


class ImageTable(ImageRows):
    """A folder of image-table parts (``part-*.parquet``), each sorted by URL."""

    def __init__(self, folder: str | Path):
        self.folder = os.fspath(folder)  # a local folder or an object-store prefix (obelics.storage)
        self._index: list[tuple[str, str, str]] | None = None

    def part_path(self, name: str) -> str:
        return storage.join(self.folder, f"part-{name}.parquet")

    def has_part(self, name: str) -> bool:
        return storage.exists(self.part_path(name))

    def write_part(self, name: str, table: pa.Table, blobs: list[bytes | None] | None = None) -> str:
        """Write one part atomically (sorted by URL, URL range in the footer).

        ``blobs``: the ``bytes`` column's values in ``table``'s row order, given apart (``table``'s own
        ``bytes`` column is then ignored). A local part is then written row group by row group, each group's
        bytes copied into one reused buffer: the same file, byte for byte, as from the whole column, without
        first copying a shard's worth of image bytes into fresh memory (its page faults cost more CPU than
        the copy)."""
        table = table.select(IMAGE_TABLE_SCHEMA.names).cast(IMAGE_TABLE_SCHEMA)
        path = self.part_path(name)
        urls = table.column("url").to_pylist()
        unsorted = any(a > b for a, b in zip(urls, urls[1:]))
        if blobs is not None and (unsorted or storage.is_remote(path)):
            table = table.set_column(table.schema.get_field_index("bytes"), IMAGE_TABLE_SCHEMA.field("bytes"),
                                     binary_column(blobs))
            blobs = None
        if unsorted:
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
        kwargs = dict(compression=compression, use_dictionary=META_COLUMNS, row_group_size=ROW_GROUP)
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
            if blobs is None:
                pq.write_table(table, tmp, **kwargs)
            else:
                _write_row_groups(tmp, table, blobs, kwargs)
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

    def counts(self) -> Counter:
        return reason_counts(self.read(columns=["url", "status", "reason"]))
