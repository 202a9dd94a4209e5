"""Parquet shards in exactly the OBELICS Hub features (docs/reference.md §2.3).

Columns, in the card's order: ``images`` list<string> (URL at image positions, null at text
positions), ``metadata`` string (JSON list, one entry per node), ``general_metadata`` string (JSON
object), ``texts`` list<string> (:data:`obelics.document.HUB_SCHEMA`). With
``output.embed_image_bytes: true`` one column is added after them, ``image_bytes`` list<binary>,
aligned with the nodes (the image's stored bytes, null at text positions and where no bytes were
kept), so the images ship with the data instead of as URLs only; ``datasets`` reads it as
``Sequence(Value("binary"))``. Every other internal column is left out.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from obelics.document import HUB_SCHEMA
from obelics.storage import AtomicFile, basename, join, write_json_atomic
from pipeline.writers.base import Writer
from pipeline.writers.stats import document_counts, stats_path_for

PARQUET_DIR = "parquet"  # DEST/parquet/ holds the shards (the Hub folder is built from it)
IMAGE_BYTES_FIELD = pa.field("image_bytes", pa.list_(pa.binary()))
HUB_SCHEMA_WITH_BYTES = HUB_SCHEMA.append(IMAGE_BYTES_FIELD)


def hub_table(table: pa.Table, embed_image_bytes: bool = False) -> pa.Table:
    """``table`` reduced and cast to the Hub features (plus ``image_bytes`` if asked)."""
    out = table.select(HUB_SCHEMA.names).cast(HUB_SCHEMA)
    if embed_image_bytes:
        if "image_bytes" in table.column_names:
            col = table.column("image_bytes").cast(IMAGE_BYTES_FIELD.type)
        else:
            col = pa.array([[None] * len(t) for t in out.column("texts").to_pylist()], IMAGE_BYTES_FIELD.type)
        out = out.append_column(IMAGE_BYTES_FIELD, col)
    return out.replace_schema_metadata(None)


def write_parquet_shard(table: pa.Table, path: str | os.PathLike, embed_image_bytes: bool = False,
                        compression: str = "zstd", row_group_size: int = 1000) -> dict:
    """Write one Hub-format Parquet shard and its ``.stats.json`` atomically; returns the stats."""
    out = hub_table(table, embed_image_bytes)
    with AtomicFile(path) as f:
        pq.write_table(out, f.file, compression=compression, row_group_size=row_group_size)
        num_bytes = f.file.tell()
    rows = out.select(["texts", "images"]).to_pylist()
    stats = {"file": basename(path), "format": "parquet", "embed_image_bytes": embed_image_bytes,
             **document_counts(rows), "num_bytes": num_bytes}
    if embed_image_bytes:
        stats["images_with_bytes"] = sum(1 for lst in out.column("image_bytes").to_pylist() for b in lst or ()
                                         if b is not None)
    write_json_atomic(stats_path_for(path), stats)
    return stats


class ParquetHubWriter(Writer):
    """``parquet``: ``DEST/parquet/train-KKKKK-of-NNNNN.parquet`` (+ ``.stats.json``), one per shard."""

    format = "parquet"

    @property
    def needs_image_bytes(self) -> bool:
        return self.cfg.embed_image_bytes

    def open(self, dest: str, shards: int) -> None:
        self.dest, self.shards, self.written = join(dest, PARQUET_DIR), shards, []

    def write(self, part: pa.Table) -> None:
        k = len(self.written)
        path = join(self.dest, f"train-{k:05d}-of-{self.shards:05d}.parquet")
        self.written.append(write_parquet_shard(part, path, self.cfg.embed_image_bytes,
                                                self.cfg.parquet_compression, self.cfg.parquet_row_group_size))

    def close(self) -> list[dict]:
        return self.written
