"""Which copy of a duplicate is "the most recent", and keeping it within groups of equal keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def recency_column(table: pa.Table, mode: str) -> pa.Array:
    """A string per row whose maximum within a group is the copy to keep.

    ``warc_filename`` (obelics-2023, docs/reference.md §6.3): the WARC path; Common Crawl paths contain
    ``CC-MAIN-YYYY-WW`` so the lexicographic maximum is the latest crawl, and copies from the same
    WARC file tie (all kept). ``capture_date``: the capture date, then the WARC path, then the doc_id,
    so exactly one copy wins and the choice does not depend on row order.
    """
    n = table.num_rows
    warc = _col(table, "warc_filename", n)
    if mode == "warc_filename":
        return warc
    if mode != "capture_date":
        raise ValueError(f"unknown recency mode {mode!r}")
    date = _col(table, "capture_date", n)
    doc_id = _col(table, "doc_id", n)
    return pc.binary_join_element_wise(date, warc, doc_id, "\x00")


def _col(table: pa.Table, name: str, n: int) -> pa.Array:
    if name not in table.column_names:
        return pa.array([""] * n, pa.string())
    return pc.fill_null(table[name].combine_chunks().cast(pa.string()), "")


def keep_most_recent(keys: pa.Array, recency: pa.Array) -> np.ndarray:
    """Boolean mask: rows whose recency is the maximum among rows with the same key.

    Rows with a null key are not grouped and always kept.
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, bool)
    t = pa.table({"k": keys, "r": recency, "i": pa.array(np.arange(n))})
    best = t.filter(pc.is_valid(t["k"])).group_by("k").aggregate([("r", "max")])
    joined = t.join(best, "k", join_type="left outer")
    is_best = pc.fill_null(pc.equal(joined["r"], joined["r_max"]), True).to_numpy(zero_copy_only=False)
    keep = np.ones(n, bool)
    keep[joined["i"].to_numpy()] = is_best
    return keep
