"""WebDataset shards for training and for the Hub: one sample per document, images as their original bytes.

Every sample has the same two members, so ``datasets.load_dataset("webdataset", data_files=".../*.tar")``
(and the Hub viewer) infer one set of columns and return each document once:

- ``__key__``: the document's ``doc_id`` (hex, no dots);
- ``{doc_id}.json``: UTF-8 JSON object with the Hub columns of the Parquet shards, ``{"doc_id", "texts",
  "images", "metadata", "general_metadata"}``: ``texts`` / ``images`` the aligned node lists (text or
  null; image URL or null), ``metadata`` and ``general_metadata`` JSON strings exactly as in the Parquet
  (strings, so that their keys may differ from document to document without changing the columns);
- ``{doc_id}.images.mp``: a msgpack list aligned with the nodes: the bytes of the image at each image
  node, exactly as stored in the image table (original bytes unless the profile re-encodes; the format is
  ``metadata[pos]["format"]``), null at text nodes and at image nodes without bytes. One member holds
  them all because per-image members (``img0003.jpg``) give every document other member names, which
  ``datasets`` refuses; msgpack is the one container that both ``datasets`` and ``webdataset`` decode
  (``mp``) without pickle.

Reading back::

    ds = datasets.load_dataset("webdataset", data_files="OUT/webdataset/*.tar", split="train")
    ds[0]["json"]["texts"], ds[0]["images.mp"]          # decoded images: features=webdataset_features()

    for s in webdataset.WebDataset(urls, shardshuffle=False):
        doc, blobs = read_sample(s)                     # blobs[pos]: bytes or None

Shards are named ``{prefix}-{index:05d}.tar`` and rotate at ``max_count`` documents or ``max_bytes``
(a single larger document still gets a shard of its own). Each is written to a temporary name and
renamed when complete, with ``{prefix}-{index:05d}.stats.json`` beside it. Every member has the same fixed
mtime (``pipeline/writers/tar.py``), so the same documents give the same tar bytes.
"""

from __future__ import annotations

import json
import os

import msgpack
import pyarrow as pa

from obelics import storage
from obelics.storage import AtomicFile, basename, join, write_json_atomic
from pipeline.writers.base import Writer
from pipeline.writers.stats import count_words, stats_path_for
from pipeline.writers.tar import TarMembers

WEBDATASET_DIR = "webdataset"


JSON_MEMBER, IMAGES_MEMBER = "json", "images.mp"


def document_json(row: dict) -> bytes:
    """The ``json`` member of one document row (see the module docstring)."""
    meta = row.get("metadata")
    meta_list = json.loads(meta) if isinstance(meta, str) else (meta or [None] * len(row["texts"]))
    gm = row.get("general_metadata")
    gm = gm if isinstance(gm, str) else json.dumps(gm or {}, ensure_ascii=False)
    doc_id = row["doc_id"]
    if "." in doc_id or "/" in doc_id:
        raise ValueError(f"doc_id {doc_id!r} cannot be a WebDataset key (no dots or slashes)")
    doc = {"doc_id": doc_id, "texts": list(row["texts"]), "images": list(row["images"]),
           "metadata": meta if isinstance(meta, str) else json.dumps(meta_list, ensure_ascii=False),
           "general_metadata": gm}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def document_sample(row: dict) -> dict:
    """The WebDataset sample of one merged document row (see the module docstring)."""
    doc = document_json(row)
    blobs = row.get("image_bytes") or [None] * len(row["texts"])
    images = [data if url is not None else None for url, data in zip(row["images"], blobs)]
    return {"__key__": row["doc_id"], JSON_MEMBER: doc, IMAGES_MEMBER: msgpack.packb(images, use_bin_type=True)}


def sample_size(sample: dict) -> int:
    """What a sample counts towards a shard's ``max_bytes``: its members' bytes plus 1 KB a key (tar headers)."""
    return sum(len(v) for k, v in sample.items() if k != "__key__") + 1024 * len(sample)


def packed_list_size(lengths: list[int | None]) -> int:
    """``len(msgpack.packb(items, use_bin_type=True))`` for a list of ``bytes`` of these lengths (``None``:
    nil), from the lengths alone: the spread output step sizes a document's tar member without reading its
    image bytes (msgpack's array and bin headers, https://github.com/msgpack/msgpack/blob/master/spec.md)."""
    n = len(lengths)
    size = 1 if n < 16 else 3 if n < 1 << 16 else 5
    for b in lengths:
        size += 1 if b is None else b + (2 if b < 1 << 8 else 3 if b < 1 << 16 else 5)
    return size


def measured_size(row: dict, lengths: list[int | None]) -> int:
    """:func:`sample_size` of a document row whose image bytes have these lengths (aligned with its nodes,
    ``None`` where it has none), without the bytes."""
    images = [b if url is not None else None for url, b in zip(row["images"], lengths)]
    return len(document_json(row)) + packed_list_size(images) + 1024 * 3


def read_sample(sample: dict) -> tuple[dict, list]:
    """(document dict, image bytes aligned with its nodes) of one raw sample of these shards."""
    doc = sample[JSON_MEMBER]
    doc = json.loads(doc) if isinstance(doc, (bytes, str)) else doc
    blobs = sample.get(IMAGES_MEMBER)
    blobs = msgpack.unpackb(blobs, raw=False) if isinstance(blobs, bytes) else blobs
    return doc, list(blobs or [None] * len(doc["texts"]))


def webdataset_features():
    """The ``datasets`` features of these shards with the images decoded (``Sequence(Image())``): pass as
    ``load_dataset("webdataset", data_files=..., features=webdataset_features())``."""
    import datasets

    doc = datasets.Features({"doc_id": datasets.Value("string"),
                             "texts": datasets.List(datasets.Value("string")),
                             "images": datasets.List(datasets.Value("string")),
                             "metadata": datasets.Value("string"),
                             "general_metadata": datasets.Value("string")})
    return datasets.Features({"json": doc, IMAGES_MEMBER: datasets.List(datasets.Image()),
                              "__key__": datasets.Value("string"), "__url__": datasets.Value("string")})


class WebDatasetWriter:
    """Write documents into size-bounded WebDataset tar shards, each atomically with its stats.json."""

    def __init__(self, folder: str | os.PathLike, prefix: str = "shard", max_count: int = 10000,
                 max_bytes: int = 1_000_000_000):
        self.folder = os.fspath(folder)
        storage.makedirs(self.folder)
        self.prefix, self.max_count, self.max_bytes = prefix, max_count, max_bytes
        self.index = 0
        self.written: list[dict] = []
        self._tar = None

    def _open(self) -> None:
        self._path = join(self.folder, f"{self.prefix}-{self.index:05d}.tar")
        self._file = AtomicFile(self._path)
        self._tar = TarMembers(self._file.file)  # webdataset.TarWriter's members, a fixed mtime, headers made cheaply
        self._stats = {"file": basename(self._path), "format": "webdataset", "documents": 0, "images": 0,
                       "images_without_bytes": 0, "words": 0, "image_bytes": 0}
        self._size = 0

    def _finish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._tar = None
        self._stats["num_bytes"] = self._file.file.tell()
        self._file.commit()
        write_json_atomic(stats_path_for(self._path), self._stats)
        self.written.append(self._stats)
        self.index += 1

    def write_row(self, row: dict) -> None:
        sample = document_sample(row)
        size = sample_size(sample)
        if self._tar is not None and self._stats["documents"] and (
                self._stats["documents"] >= self.max_count or self._size + size > self.max_bytes):
            self._finish()
        if self._tar is None:
            self._open()
        for k in sorted(sample):  # webdataset.TarWriter's order and names: {key}.{member}, "_" keys left out
            if not k.startswith("_"):
                self._tar.add(f"{sample['__key__']}.{k}", sample[k])
        blobs = [b for u, b in zip(row["images"], row.get("image_bytes") or ()) if u is not None and b is not None]
        self._stats["documents"] += 1
        self._stats["images"] += len(blobs)
        self._stats["images_without_bytes"] += sum(1 for i in row["images"] if i is not None) - len(blobs)
        self._stats["words"] += count_words(row["texts"])
        self._stats["image_bytes"] += sum(len(b) for b in blobs)
        self._size += size

    def write_table(self, table: pa.Table) -> None:
        self.write_rows(table.to_pylist())

    def write_rows(self, rows: list[dict]) -> None:
        for row in rows:
            self.write_row(row)

    def close(self) -> list[dict]:
        """Finish the open shard; returns the stats of every shard written."""
        self._finish()
        return self.written

    def abort(self) -> None:
        if self._tar is not None:
            try:
                self._tar.close()
            finally:
                self._file.abort()
                self._tar = None

    def __enter__(self) -> WebDatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_webdataset(table: pa.Table, folder: str | os.PathLike, prefix: str = "shard", max_count: int = 10000,
                     max_bytes: int = 1_000_000_000) -> list[dict]:
    """Write merged document rows as WebDataset shards; returns the per-shard stats."""
    with WebDatasetWriter(folder, prefix, max_count, max_bytes) as w:
        w.write_table(table)
    return w.written


def image_lengths(table: pa.Table, images) -> list[list[int | None]]:
    """For each document row, the length of the bytes :func:`pipeline.images.merge.fill_image_bytes` would
    put at each node (``None`` where it puts none), from the image table's ``num_bytes`` without reading a
    byte of the images: the same rule (a ``success`` row whose ``sha256`` is the node's metadata's)."""
    rows = table.select(["images", "metadata"]).to_pylist()
    if images is None:
        return [[None] * len(r["images"]) for r in rows]
    hits = images.lookup({u for r in rows for u in r["images"] if u is not None}, with_bytes=False)
    out = []
    for r in rows:
        meta = r["metadata"]
        meta = json.loads(meta) if isinstance(meta, str) else (meta or [None] * len(r["images"]))
        lengths: list[int | None] = []
        for pos, url in enumerate(r["images"]):
            hit = hits.get(url) if url is not None else None
            ok = hit and hit["status"] == "success" and hit["sha256"] == (meta[pos] or {}).get("sha256")
            lengths.append(hit["num_bytes"] if ok else None)
        out.append(lengths)
    return out


class RollingPlan:
    """Where the tars of a run start, from each document's :func:`sample_size` in run order: the rule of
    :meth:`WebDatasetWriter.write_row` (a new tar at ``max_count`` documents, or when the next document would
    pass ``max_bytes``; a larger single document still gets a tar of its own), applied to sizes alone."""

    def __init__(self, max_count: int, max_bytes: int):
        self.max_count, self.max_bytes = max_count, max_bytes
        self.start = self.row = self.docs = self.size = 0

    def add(self, sizes) -> list[tuple[int, int, int]]:
        """Take the next documents' sizes; returns the tars they close: ``(first row, end row, total size)``."""
        done = []
        for s in sizes:
            if self.docs and (self.docs >= self.max_count or self.size + s > self.max_bytes):
                done.append((self.start, self.row, self.size))
                self.start, self.docs, self.size = self.row, 0, 0
            self.docs += 1
            self.size += s
            self.row += 1
        return done

    def finish(self) -> list[tuple[int, int, int]]:
        """The last tar (none when there were no documents)."""
        return [(self.start, self.row, self.size)] if self.docs else []


class WebDatasetShardWriter(Writer):
    """``webdataset``: ``DEST/webdataset/shard-NNNNN.tar`` (+ ``.stats.json``), rotating at
    ``output.webdataset_max_count`` documents or ``output.webdataset_max_bytes`` across the run's shards."""

    format = "webdataset"
    needs_image_bytes = True

    def open(self, dest: str, shards: int) -> None:
        self._w = WebDatasetWriter(join(dest, WEBDATASET_DIR), "shard", self.cfg.webdataset_max_count,
                                   self.cfg.webdataset_max_bytes)

    def write(self, part: pa.Table) -> None:
        self._w.write_table(part)

    def close(self) -> list[dict]:
        return self._w.close()

    def abort(self) -> None:
        self._w.abort()

    # spread over tasks (pipeline.writers.parallel): tars span the run's shards, so their boundaries come
    # from every document's size, measured shard by shard, then each tar is written by a task of its own
    mode = "spans"

    def measure(self, part: pa.Table, images) -> list[int]:
        return [measured_size(row, lengths) for row, lengths in
                zip(part.select(["doc_id", "texts", "images", "metadata", "general_metadata"]).to_pylist(),
                    image_lengths(part, images))]

    def location(self, dest: str, stats: dict) -> str:
        return join(dest, WEBDATASET_DIR, stats["file"])

    def planner(self) -> RollingPlan:
        return RollingPlan(self.cfg.webdataset_max_count, self.cfg.webdataset_max_bytes)

    def write_span(self, dest: str, part: pa.Table, index: int, size: int) -> list[dict]:
        return self.write_span_rows(dest, part.to_pylist(), index, size)

    def write_span_rows(self, dest: str, rows: list[dict], index: int, size: int) -> list[dict]:
        """:meth:`write_span` from the document rows (``image_bytes`` filled: :func:`pipeline.images.merge.fill_rows`),
        so the tar's task turns its documents into rows once."""
        w = WebDatasetWriter(join(dest, WEBDATASET_DIR), "shard", max_count=1 << 62, max_bytes=1 << 62)  # one tar
        w.index = index
        try:
            w.write_rows(rows)
            if w._size != size or w._stats["documents"] != len(rows):
                raise RuntimeError(f"webdataset tar {index}: measured {size} bytes before writing, "
                                   f"{w._size} written: the tar boundaries would differ from a sequential run")
        except BaseException:
            w.abort()
            raise
        return w.close()
