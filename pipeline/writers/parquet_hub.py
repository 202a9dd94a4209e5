"""Parquet shards in exactly the OBELICS Hub features (docs/reference.md §2.3).

Columns, in the card's order: ``images`` list<string> (URL at image positions, null at text
positions), ``metadata`` string (JSON list, one entry per node), ``general_metadata`` string (JSON
object), ``texts`` list<string> (:data:`obelics.document.HUB_SCHEMA`). With
``output.embed_images: true`` one column is added after them, ``embedded_images``, aligned with the
nodes: the image's stored bytes as ``datasets``' ``Image`` struct ``{bytes, path}`` (null at text
positions and where no bytes were kept), with the schema's ``huggingface`` metadata saying
``Sequence(Image())``, so ``datasets`` decodes the images and the Hub viewer shows them. Every other
internal column is left out.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from obelics.document import HUB_SCHEMA
from obelics.storage import AtomicFile, basename, join, write_json_atomic
from pipeline.writers.base import Writer
from pipeline.writers.stats import document_counts, stats_path_for

PARQUET_DIR = "parquet"  # DEST/parquet/ holds the shards (the Hub folder is built from it)
EMBEDDED = "embedded_images"
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets' Image() storage
EMBEDDED_FIELD = pa.field(EMBEDDED, pa.list_(IMAGE_STRUCT))
# The features ``datasets`` reads from the schema (written by hand: the schema is fixed, and ``Sequence``
# is the spelling every datasets version since 2.x decodes).
HF_FEATURES = {"images": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
               "metadata": {"dtype": "string", "_type": "Value"},
               "general_metadata": {"dtype": "string", "_type": "Value"},
               "texts": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
               EMBEDDED: {"feature": {"_type": "Image"}, "_type": "Sequence"}}
HUB_SCHEMA_WITH_IMAGES = HUB_SCHEMA.append(EMBEDDED_FIELD).with_metadata(
    {"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})


def embedded_column(table: pa.Table) -> pa.Array:
    """``embedded_images`` of document rows: ``{bytes, path}`` at image nodes with bytes, else null."""
    blobs = table.column("image_bytes").to_pylist() if "image_bytes" in table.column_names else None
    values = []
    for k, urls in enumerate(table.column("images").to_pylist()):
        row = blobs[k] if blobs is not None and blobs[k] is not None else [None] * len(urls)
        values.append([{"bytes": b, "path": None} if u is not None and b is not None else None
                       for u, b in zip(urls, row)])
    return pa.array(values, EMBEDDED_FIELD.type)


def hub_table(table: pa.Table, embed_images: bool = False) -> pa.Table:
    """``table`` reduced and cast to the Hub features (plus ``embedded_images`` if asked)."""
    out = table.select(HUB_SCHEMA.names).cast(HUB_SCHEMA).replace_schema_metadata(None)
    if embed_images:
        out = out.append_column(EMBEDDED_FIELD, embedded_column(table)).cast(HUB_SCHEMA_WITH_IMAGES)
    return out


def write_parquet_shard(table: pa.Table, path: str | os.PathLike, embed_images: bool = False,
                        compression: str = "zstd", row_group_size: int = 1000) -> dict:
    """Write one Hub-format Parquet shard and its ``.stats.json`` atomically; returns the stats."""
    out = hub_table(table, embed_images)
    with AtomicFile(path) as f:
        pq.write_table(out, f.file, compression=compression, row_group_size=row_group_size)
        num_bytes = f.file.tell()
    rows = out.select(["texts", "images"]).to_pylist()
    stats = {"file": basename(path), "format": "parquet", "embed_images": embed_images,
             **document_counts(rows), "num_bytes": num_bytes}
    if embed_images:
        stats["images_with_bytes"] = sum(1 for lst in out.column(EMBEDDED).to_pylist() for b in lst or ()
                                         if b is not None)
    write_json_atomic(stats_path_for(path), stats)
    return stats


class ParquetHubWriter(Writer):
    """``parquet``: ``DEST/parquet/train-KKKKK-of-NNNNN.parquet`` (+ ``.stats.json``), one per shard."""

    format = "parquet"

    @property
    def needs_image_bytes(self) -> bool:
        return self.cfg.embed_images

    mode = "shards"  # each shard's file is named by its index alone: written by a task of its own

    def open(self, dest: str, shards: int) -> None:
        self.dest, self.shards, self.written = dest, shards, []

    def write(self, part: pa.Table) -> None:
        self.written.extend(self.write_shard(self.dest, part, len(self.written), self.shards))

    def write_shard(self, dest: str, part: pa.Table, k: int, shards: int) -> list[dict]:
        path = join(dest, PARQUET_DIR, f"train-{k:05d}-of-{shards:05d}.parquet")
        return [write_parquet_shard(part, path, self.cfg.embed_images, self.cfg.parquet_compression,
                                    self.cfg.parquet_row_group_size)]

    def close(self) -> list[dict]:
        return self.written

    def location(self, dest: str, stats: dict) -> str:
        return join(dest, PARQUET_DIR, stats["file"])
