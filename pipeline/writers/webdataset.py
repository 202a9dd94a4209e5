"""WebDataset shards for training: one sample per document, images as their original bytes.

Sample layout (the training package reads exactly this with the ``webdataset`` library):

- ``__key__``: the document's ``doc_id`` (hex, no dots), so tar members are ``{doc_id}.json``,
  ``{doc_id}.img0003.jpg``, ...
- ``json``: UTF-8 JSON object ``{"doc_id", "texts", "images", "metadata", "general_metadata"}`` where
  ``texts`` / ``images`` are the aligned node lists (text or null; image URL or null), ``metadata``
  the list of per-node dicts (null for text) and ``general_metadata`` the page's dict — decoded, not
  JSON strings.
- ``img{pos:04d}.{ext}``: the bytes of the image at node position ``pos`` (0-based index into
  ``texts``/``images``), exactly as stored in the image table (original bytes unless the profile
  re-encodes); ``ext`` from the image's format (``jpg``, ``png``, ``webp``, ``gif``, ...; see
  ``pipeline.images.table.FORMAT_EXT``). An image node without bytes has no member; ``json`` still
  lists its URL.

Reading back::

    import webdataset as wds
    for s in wds.WebDataset(urls, shardshuffle=False):
        doc = json.loads(s["json"]); pos_to_bytes = {int(k[3:7]): v for k, v in s.items() if k.startswith("img")}

Shards are named ``{prefix}-{index:05d}.tar`` and rotate at ``max_count`` documents or ``max_bytes``
(a single larger document still gets a shard of its own). Each is written to a temporary name and
renamed when complete, with ``{prefix}-{index:05d}.stats.json`` beside it.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import webdataset as wds

from obelics import storage
from obelics.storage import AtomicFile, basename, join, write_json_atomic
from pipeline.images.table import ext_for_format
from pipeline.writers.base import Writer
from pipeline.writers.stats import count_words, stats_path_for

WEBDATASET_DIR = "webdataset"


def document_sample(row: dict) -> dict:
    """The WebDataset sample of one merged document row (see the module docstring)."""
    meta = row.get("metadata")
    meta = json.loads(meta) if isinstance(meta, str) else (meta or [None] * len(row["texts"]))
    gm = row.get("general_metadata")
    gm = json.loads(gm) if isinstance(gm, str) else (gm or {})
    doc_id = row["doc_id"]
    if "." in doc_id or "/" in doc_id:
        raise ValueError(f"doc_id {doc_id!r} cannot be a WebDataset key (no dots or slashes)")
    sample = {"__key__": doc_id,
              "json": json.dumps({"doc_id": doc_id, "texts": list(row["texts"]), "images": list(row["images"]),
                                  "metadata": meta, "general_metadata": gm}, ensure_ascii=False).encode("utf-8")}
    blobs = row.get("image_bytes") or [None] * len(row["texts"])
    for pos, (url, m, data) in enumerate(zip(row["images"], meta, blobs)):
        if url is not None and data is not None:
            sample[f"img{pos:04d}.{ext_for_format((m or {}).get('format'))}"] = data
    return sample


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
        self._tar = wds.TarWriter(self._file.file)
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
        size = sum(len(v) for k, v in sample.items() if k != "__key__") + 1024 * len(sample)
        if self._tar is not None and self._stats["documents"] and (
                self._stats["documents"] >= self.max_count or self._size + size > self.max_bytes):
            self._finish()
        if self._tar is None:
            self._open()
        self._tar.write(sample)
        n_images = sum(1 for i in row["images"] if i is not None)
        n_members = sum(1 for k in sample if k.startswith("img"))
        self._stats["documents"] += 1
        self._stats["images"] += n_members
        self._stats["images_without_bytes"] += n_images - n_members
        self._stats["words"] += count_words(row["texts"])
        self._stats["image_bytes"] += sum(len(v) for k, v in sample.items() if k.startswith("img"))
        self._size += size

    def write_table(self, table: pa.Table) -> None:
        for row in table.to_pylist():
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
