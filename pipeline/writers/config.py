"""The ``output:`` section of a profile: which formats a run writes, their options, the report and the
published dataset's card."""

from __future__ import annotations

from dataclasses import dataclass, field

from obelics.config import ConfigError
from pipeline.writers.base import writer_class


@dataclass
class OutputConfig:
    """What a run writes. Defaults equal the ``default`` profile.

    ``formats`` names the writers, in the order they write (see :mod:`pipeline.writers.base`): a
    built-in name (``parquet``, ``webdataset``) or ``package.module:Class`` for a writer of your own.
    """

    formats: list[str] = field(default_factory=lambda: ["parquet", "webdataset"])  # Hub Parquet, training tars
    embed_images: bool = False              # add `embedded_images`, Sequence(Image()), to the Parquet shards
    parquet_compression: str = "zstd"
    parquet_row_group_size: int = 1000
    webdataset_max_count: int = 10000       # documents per tar, at most
    webdataset_max_bytes: int = 1_000_000_000  # bytes per tar, about (a larger single document still fits)
    report: bool = True                     # stats.json + report.html of the whole run
    license: str = "cc-by-4.0"              # the published dataset's licence (the card's `license`)
    pretty_name: str = "OBELICS-style interleaved image-text documents"
    language: str = "en"

    def __post_init__(self) -> None:
        if len(set(self.formats)) != len(self.formats):
            raise ConfigError(f"output.formats: a format is listed twice in {self.formats}")
        for name in self.formats:
            writer_class(name)  # an unknown name or a class that is not a Writer fails here, at load
