"""Set-of-images dedup (docs/reference.md §6.6): documents with the same image URLs, keep the most recent.

``default`` keys a document by its sorted unique image URLs joined with ``\\n`` (no URL contains a
newline); ``obelics-2023`` concatenated them with no delimiter, so ``["a", "bc"]`` and ``["ab", "c"]``
collide (docs/reference.md §9.3 #15), and removed documents by their (url, warc_filename) pair, so a kept document that
shares that pair with a removed one goes too. Documents with no image have no key and are kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.common import DedupResult, as_table, removal_result, removed_table
from filters.dedup.config import DedupConfig
from filters.dedup.recency import keep_most_recent, recency_column

REASON = "image_set_dedup:older_copy"


def image_set_key(images, key: str = "sorted_delimited") -> str | None:
    """The key of one document's image list (None when it has no image)."""
    urls = sorted({u for u in images or () if u is not None})
    if not urls:
        return None
    if key == "concat":
        return "".join(urls)
    if key == "sorted_delimited":
        return "\n".join(urls)
    raise ValueError(f"unknown image_set.key {key!r}")


def image_set_keys(table: pa.Table, key: str = "sorted_delimited") -> pa.Array:
    return pa.array([image_set_key(im, key) for im in table["images"].to_pylist()], pa.string())


def image_set_duplicates(table: pa.Table, cfg: DedupConfig) -> pa.Table:
    """(doc_id, reason) of the older copies; ``table`` holds every document sharing each key.

    With ``remove_by: url_warc`` the result also carries ``url`` and ``warc_filename`` of the older
    copies; :func:`expand_url_warc` turns those pairs into every matching document.
    """
    keys = image_set_keys(table, cfg.image_set.key)
    keep = keep_most_recent(keys, recency_column(table, cfg.recency))
    drop = pa.array(~keep)
    removed = removed_table(table["doc_id"].filter(drop).to_pylist(), REASON)
    if cfg.image_set.remove_by == "url_warc":
        removed = removed.append_column("url", table["url"].filter(drop).combine_chunks().cast(pa.string()))
        removed = removed.append_column("warc_filename",
                                        table["warc_filename"].filter(drop).combine_chunks().cast(pa.string()))
    return removed


def expand_url_warc(table: pa.Table, removed_pairs: pa.Table) -> pa.Table:
    """(doc_id, reason) of every document of ``table`` whose (url, warc_filename) is in ``removed_pairs``."""
    if removed_pairs.num_rows == 0:
        return removed_table([], REASON)
    sep = "\x00"
    def pair(t):
        return pc.binary_join_element_wise(pc.fill_null(t["url"].combine_chunks().cast(pa.string()), ""),
                                           pc.fill_null(t["warc_filename"].combine_chunks().cast(pa.string()), ""), sep)
    hit = pc.is_in(pair(table), value_set=pair(removed_pairs)).to_numpy(zero_copy_only=False)
    return removed_table(table["doc_id"].filter(pa.array(np.asarray(hit, bool))).to_pylist(), REASON)


def image_set_dedup(docs, cfg: DedupConfig | None = None) -> DedupResult:
    """The whole pass over documents held in memory."""
    cfg = cfg or DedupConfig()
    table = as_table(docs)
    removed = image_set_duplicates(table, cfg)
    if cfg.image_set.remove_by == "url_warc":
        removed = expand_url_warc(table, removed)
    return removal_result("dedup.image_set", table, removed)
