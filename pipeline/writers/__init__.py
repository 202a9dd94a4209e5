"""Writers: one per output format (``output.formats``), behind :class:`~pipeline.writers.base.Writer`.

Built in: Parquet shards in the OBELICS Hub features, WebDataset shards for training; each file gets a
``.stats.json`` beside it.
"""

from pipeline.writers.config import OutputConfig

__all__ = ["OutputConfig"]
