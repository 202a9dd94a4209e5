"""The image stage in one call: the run's unique image URLs -> image table. The one place the image
source is chosen (the run's ``image_table`` op and ``obelics images`` both call :func:`fetch_images`).

``images.source: web`` downloads them with img2dataset (:mod:`pipeline.images.download`);
``images.source: warc`` reads them from the given WARCs' image records (:mod:`pipeline.images.offline`),
so an offline run downloads nothing. Either way the result is the same
:class:`~pipeline.images.table.ImageTable`, which :func:`pipeline.images.merge.merge_table` merges into
documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from obelics import storage
from obelics.records import ReadStats
from pipeline.images.config import ImagesConfig
from pipeline.images.download import TABLE_DIR, UrlFiles, download_images, unique_urls
from pipeline.images.offline import warc_image_table
from pipeline.images.table import ImageTable


def fetch_images(urls: Iterable[str] | UrlFiles, work_dir: str | Path, cfg: ImagesConfig | None = None,
                 warcs: Iterable[str | Path] | None = None, stats: ReadStats | None = None,
                 located: dict | None = None, use_ray: bool | None = None, dedup=None) -> ImageTable:
    """The image table of ``urls`` under ``work_dir``, from the source ``cfg.source`` names.

    ``urls``: the URLs (made unique, sorted), or :class:`~pipeline.images.download.UrlFiles` (the run's
    distinct URLs as files: the driver never holds them). ``located``: where the WARCs' image records are,
    {source: its (url, offset, length) list, or the Parquet file of those}; ``use_ray``: the WARCs are read by
    Ray tasks, else in this process; ``dedup``: the shuffle's settings (:func:`pipeline.images.offline.warc_image_table`)."""
    cfg = cfg or ImagesConfig()
    if not isinstance(urls, UrlFiles):
        urls = sorted(set(u for u in urls if u))
    if cfg.source == "warc":
        warcs = list(warcs or [])
        if not warcs:
            raise ValueError("images.source is 'warc' but no WARC files were given")
        return warc_image_table(warcs, storage.join(work_dir, TABLE_DIR), cfg, wanted=urls, stats=stats,
                                located=located, use_ray=use_ray, dedup=dedup)
    if cfg.source != "web":
        raise ValueError(f"images.source must be 'web' or 'warc', not {cfg.source!r}")
    return download_images(urls, work_dir, cfg)


def image_table(docs: Iterable, work_dir: str | Path, cfg: ImagesConfig | None = None,
                warcs: Iterable[str | Path] | None = None, stats: ReadStats | None = None) -> ImageTable:
    """Build the image table for every image URL of ``docs`` (document tables, Parquet paths or URL lists).

    Giving ``warcs`` reads the images from them whatever ``images.source`` says (``obelics images --warc``).
    """
    cfg = cfg or ImagesConfig()
    if warcs and cfg.source != "warc":
        cfg = replace(cfg, source="warc")
    return fetch_images(unique_urls(docs), work_dir, cfg, warcs, stats)
