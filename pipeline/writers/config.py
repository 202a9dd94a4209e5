"""The ``output:`` section of a profile: writers, report and the published dataset's card."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OutputConfig:
    """What a run writes. Defaults equal the ``default`` profile."""

    parquet: bool = True                    # Parquet shards in the OBELICS Hub features
    embed_image_bytes: bool = False         # add an `image_bytes` list<binary> column to the Parquet shards
    parquet_compression: str = "zstd"
    parquet_row_group_size: int = 1000
    webdataset: bool = True                 # WebDataset shards for training (one sample per document)
    webdataset_max_count: int = 10000       # documents per tar, at most
    webdataset_max_bytes: int = 1_000_000_000  # bytes per tar, about (a larger single document still fits)
    report: bool = True                     # stats.json + report.html of the whole run
    license: str = "cc-by-4.0"              # the published dataset's licence (the card's `license`)
    pretty_name: str = "OBELICS-style interleaved image-text documents"
    language: str = "en"
