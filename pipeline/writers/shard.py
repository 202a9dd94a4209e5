"""All the outputs of one shard of documents, as the profile's ``output:`` section asks.

``OUT_DIR/parquet/NAME.parquet`` (+ ``NAME.stats.json``) in the Hub features, and
``OUT_DIR/webdataset/NAME-00000.tar``... (+ their ``.stats.json``) for training. Image bytes missing
from the rows (stages may carry documents without them) are filled back from the image table.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.images.merge import fill_image_bytes
from pipeline.images.table import ImageTable
from pipeline.writers.config import OutputConfig
from pipeline.writers.parquet_hub import write_parquet_shard
from pipeline.writers.webdataset import write_webdataset

PARQUET_DIR = "parquet"
WEBDATASET_DIR = "webdataset"


def write_shard(table: pa.Table, out_dir: str | Path, name: str, cfg: OutputConfig | None = None,
                images: ImageTable | None = None) -> list[dict]:
    """Write one shard's outputs; returns the writers' per-file stats (the shard's ``outputs``)."""
    cfg = cfg or OutputConfig()
    out_dir = Path(out_dir)
    needs_bytes = cfg.webdataset or cfg.embed_image_bytes
    if needs_bytes and images is not None:
        table = fill_image_bytes(table, images)
    outputs = []
    if cfg.parquet:
        outputs.append(write_parquet_shard(table, out_dir / PARQUET_DIR / f"{name}.parquet",
                                           embed_image_bytes=cfg.embed_image_bytes,
                                           compression=cfg.parquet_compression,
                                           row_group_size=cfg.parquet_row_group_size))
    if cfg.webdataset:
        outputs += write_webdataset(table, out_dir / WEBDATASET_DIR, prefix=name,
                                    max_count=cfg.webdataset_max_count, max_bytes=cfg.webdataset_max_bytes)
    return outputs
