"""URL dedup (docs/reference.md §6.3): one document per URL, the most recent crawl; then no imageless documents."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.common import (
    DedupResult,
    as_table,
    concat_removed,
    num_images,
    removal_result,
    removed_table,
)
from filters.dedup.config import DedupConfig
from filters.dedup.recency import keep_most_recent, recency_column

KEY_COLUMNS = ["doc_id", "url", "warc_filename", "capture_date", "images"]


def url_duplicates(table: pa.Table, recency: str = "capture_date") -> pa.Table:
    """(doc_id, reason) of documents whose URL has a more recent copy in ``table``.

    ``table`` must hold every document with a given URL (a whole dataset, or one hash partition by URL).
    Documents without a URL are never duplicates.
    """
    urls = table["url"].combine_chunks()
    urls = pc.if_else(pc.equal(pc.fill_null(urls, ""), ""), pa.scalar(None, pa.string()), urls)
    keep = keep_most_recent(urls, recency_column(table, recency))
    return removed_table(table["doc_id"].filter(pa.array(~keep)).to_pylist(), "url_dedup:older_copy")


def without_images(table: pa.Table) -> pa.Table:
    """(doc_id, reason) of documents with no image node."""
    none = num_images(table) == 0
    return removed_table(table["doc_id"].filter(pa.array(none)).to_pylist(), "url_dedup:no_image")


def url_removals(table: pa.Table, cfg: DedupConfig) -> pa.Table:
    """Everything the URL pass removes from ``table`` (one partition by URL, or the whole dataset)."""
    parts = [url_duplicates(table, cfg.recency)]
    if cfg.url.drop_without_images:
        dup = set(parts[0]["doc_id"].to_pylist())
        noimg = without_images(table)
        parts.append(noimg.filter(pa.array(np.array([d not in dup for d in noimg["doc_id"].to_pylist()], bool))))
    return concat_removed(parts)


def url_dedup(docs, cfg: DedupConfig | None = None) -> DedupResult:
    """URL dedup over documents held in memory (a list of WebDocument or a DOCUMENT_SCHEMA table)."""
    cfg = cfg or DedupConfig()
    table = as_table(docs)
    removed = url_removals(table, cfg)
    return removal_result("dedup.url", table, removed)
