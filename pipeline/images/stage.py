"""The image stage in one call, for the run's composer: the run's unique image URLs -> image table.

``images.source: web`` downloads them with img2dataset (:mod:`pipeline.images.download`);
``images.source: warc`` (or any ``warcs`` given) reads them from the WARCs' image records
(:mod:`pipeline.images.offline`), so an offline run downloads nothing. Either way the result is the
same :class:`~pipeline.images.table.ImageTable`, which :func:`pipeline.images.merge.merge_table`
merges into documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from obelics.records import ReadStats
from pipeline.images.config import ImagesConfig
from pipeline.images.download import TABLE_DIR, download_images, unique_urls
from pipeline.images.offline import warc_image_table
from pipeline.images.table import ImageTable


def image_table(docs: Iterable, work_dir: str | Path, cfg: ImagesConfig | None = None,
                warcs: Iterable[str | Path] | None = None, stats: ReadStats | None = None) -> ImageTable:
    """Build the image table for every image URL of ``docs`` (document tables, Parquet paths or URL lists)."""
    cfg = cfg or ImagesConfig()
    urls = unique_urls(docs)
    warcs = list(warcs or [])
    if cfg.source == "warc" or warcs:
        if not warcs:
            raise ValueError("images.source is 'warc' but no WARC files were given")
        return warc_image_table(warcs, Path(work_dir) / TABLE_DIR, cfg, wanted=urls, stats=stats)
    if cfg.source != "web":
        raise ValueError(f"images.source must be 'web' or 'warc', not {cfg.source!r}")
    return download_images(urls, work_dir, cfg)
