"""Image-URL frequency (docs/reference.md §6.1): image URLs seen more than N times lose their image nodes.

Counting is split from removal so that a cluster can count per partition and broadcast only the
(hashed) too-frequent URLs: ``image_url_hashes`` -> ``too_frequent`` -> ``remove_image_nodes``.
URLs are compared by their 64-bit xxh3 hash (a false match needs a collision among the frequent
URLs, about n_frequent * n_urls / 2**64).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import FilterStats
from filters.dedup.common import DedupResult, as_table, empty_removed, filter_list_elements, hash64
from filters.dedup.config import DedupConfig


def _image_keys(urls: list, canonical: dict[str, str] | None) -> list:
    if not canonical:
        return urls
    return [canonical.get(u, u) if u is not None else None for u in urls]


def image_url_hashes(table: pa.Table, count: str = "documents", canonical: dict[str, str] | None = None) -> np.ndarray:
    """One uint64 per counted image: every image node (``occurrences``) or each URL once per document
    (``documents``). ``canonical`` maps URLs to a shared key (e.g. a pHash cluster) before counting."""
    images = table["images"].combine_chunks()
    flat = pc.list_flatten(images)
    valid = pc.is_valid(flat)
    urls = flat.filter(valid).to_pylist()
    h = hash64(_image_keys(urls, canonical))
    if count == "documents":
        parent = pc.list_parent_indices(images).filter(valid).to_numpy().astype(np.uint64)
        pairs = np.unique(np.stack([parent, h], axis=1), axis=0) if len(h) else np.zeros((0, 2), np.uint64)
        h = pairs[:, 1]
    elif count != "occurrences":
        raise ValueError(f"unknown image_url.count {count!r}")
    return h


def too_frequent(hashes: np.ndarray, max_count: int) -> np.ndarray:
    """Sorted unique hashes seen more than ``max_count`` times."""
    if len(hashes) == 0:
        return np.zeros(0, np.uint64)
    values, counts = np.unique(hashes, return_counts=True)
    return values[counts > max_count]


def remove_image_nodes(table: pa.Table, frequent: np.ndarray, canonical: dict[str, str] | None = None,
                       ) -> tuple[pa.Table, int]:
    """``table`` without the image nodes whose URL hash is in ``frequent`` (sorted); text is untouched.

    Returns the new table and the number of image nodes removed. Documents are never dropped here.
    """
    if table.num_rows == 0 or len(frequent) == 0:
        return table, 0
    images = table["images"].combine_chunks()
    if images.offset:
        images = pa.concat_arrays([images])
    flat = pc.list_flatten(images)
    urls = flat.to_pylist()
    h = hash64(_image_keys(urls, canonical))
    valid = np.array([u is not None for u in urls], bool)
    hit = valid & np.isin(h, frequent)
    if not hit.any():
        return table, 0
    keep = ~hit
    parent = pc.list_parent_indices(images).to_numpy()
    out = table
    for name in ("texts", "images"):
        out = out.set_column(out.column_names.index(name), name, filter_list_elements(out[name], keep))
    if "metadata" in out.column_names:
        meta = out["metadata"].to_pylist()
        offsets = images.offsets.to_numpy()
        for row in np.unique(parent[hit]):
            m = json.loads(meta[row]) if meta[row] else None
            if isinstance(m, list):
                lo = offsets[row]
                meta[row] = json.dumps([x for k, x in enumerate(m) if keep[lo + k]], ensure_ascii=False)
        out = out.set_column(out.column_names.index("metadata"), "metadata", pa.array(meta, pa.string()))
    return out, int(hit.sum())


def image_url_dedup(docs, cfg: DedupConfig | None = None, canonical: dict[str, str] | None = None) -> DedupResult:
    """The whole pass over documents held in memory."""
    cfg = cfg or DedupConfig()
    c = cfg.image_url
    table = as_table(docs)
    stats = FilterStats("dedup.image_url")
    stats.seen("document", table.num_rows)
    canonical = canonical if c.use_phash else None
    frequent = too_frequent(image_url_hashes(table, c.count, canonical), c.max_count)
    out, n = remove_image_nodes(table, frequent, canonical)
    stats.seen("image", len(pc.list_flatten(table["images"].combine_chunks()).drop_null()))
    if n:
        stats.drop("image", f"image_url_dedup:seen>{c.max_count}", n)
    stats.kept("document", out.num_rows)
    return DedupResult(out, empty_removed(), stats)
