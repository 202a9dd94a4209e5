"""Writers: Parquet shards in the OBELICS Hub features, WebDataset shards for training, stats.json."""

from pipeline.writers.config import OutputConfig

__all__ = ["OutputConfig"]
