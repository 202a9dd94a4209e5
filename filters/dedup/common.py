"""Helpers shared by the passes: the removed-ids table, applying removals, results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import FilterStats
from obelics.document import DOCUMENT_SCHEMA, WebDocument, documents_to_table, table_to_documents

REMOVED_SCHEMA = pa.schema([("doc_id", pa.string()), ("reason", pa.string())])


def removed_table(doc_ids, reason: str | list[str]) -> pa.Table:
    """A (doc_id, reason) table; ``reason`` is one string for all rows or one per row."""
    doc_ids = list(doc_ids)
    reasons = [reason] * len(doc_ids) if isinstance(reason, str) else list(reason)
    return pa.table({"doc_id": pa.array(doc_ids, pa.string()), "reason": pa.array(reasons, pa.string())})


def empty_removed() -> pa.Table:
    return REMOVED_SCHEMA.empty_table()


def concat_removed(tables: list[pa.Table]) -> pa.Table:
    tables = [t.select(["doc_id", "reason"]).cast(REMOVED_SCHEMA) for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else empty_removed()


def apply_removals(table: pa.Table, removed: pa.Table) -> pa.Table:
    """``table`` without the rows whose doc_id is in ``removed``."""
    if removed.num_rows == 0:
        return table
    drop = pc.is_in(table["doc_id"], value_set=removed["doc_id"].combine_chunks())
    return table.filter(pc.invert(pc.fill_null(drop, False)))


def count_removed(stats: FilterStats, removed: pa.Table, level: str = "document") -> None:
    """Add ``removed``'s rows to ``stats`` by reason."""
    if removed.num_rows == 0:
        return
    vc = pc.value_counts(removed["reason"].combine_chunks())
    for item in vc.to_pylist():
        stats.drop(level, item["values"], item["counts"])


def num_images(table: pa.Table) -> np.ndarray:
    """Image nodes per row (non-null entries of ``images``)."""
    images = table["images"].combine_chunks()
    flat = pc.list_flatten(images)
    parent = pc.list_parent_indices(images).to_numpy()
    valid = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    return np.bincount(parent[valid], minlength=table.num_rows) if table.num_rows else np.zeros(0, np.int64)


def as_table(docs: list[WebDocument] | pa.Table) -> pa.Table:
    return docs if isinstance(docs, pa.Table) else documents_to_table(docs, DOCUMENT_SCHEMA)


@dataclass
class DedupResult:
    """What a pass over an in-memory set of documents returns."""

    table: pa.Table
    removed: pa.Table  # (doc_id, reason) of removed documents
    stats: FilterStats = field(default_factory=lambda: FilterStats("dedup"))

    @property
    def docs(self) -> list[WebDocument]:
        return list(table_to_documents(self.table))

    @property
    def doc_ids(self) -> list[str]:
        return self.table["doc_id"].to_pylist()

    def removed_ids(self) -> dict[str, str]:
        return dict(zip(self.removed["doc_id"].to_pylist(), self.removed["reason"].to_pylist()))


def filter_list_elements(arr: pa.Array | pa.ChunkedArray, flat_keep: np.ndarray) -> pa.ListArray:
    """Keep the flattened elements of list array ``arr`` where ``flat_keep`` is True (rows stay)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if arr.offset:  # normalise a sliced array so offsets start at 0
        arr = pa.concat_arrays([arr])
    offsets = arr.offsets.to_numpy()
    flat = arr.values.slice(offsets[0], offsets[-1] - offsets[0])
    lens = np.diff(offsets)
    row_of = np.repeat(np.arange(len(arr)), lens)
    kept_per_row = np.bincount(row_of[flat_keep], minlength=len(arr))
    new_offsets = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(np.int32)
    values = flat.filter(pa.array(flat_keep))
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), values, mask=arr.is_null())


def hash64(strings) -> np.ndarray:
    """xxh3-64 of each string (None -> 0) as uint64; used for shuffle keys instead of the strings."""
    import xxhash

    f = xxhash.xxh3_64_intdigest
    return np.fromiter((f(s.encode("utf-8", "surrogatepass")) if s is not None else 0 for s in strings), dtype=np.uint64)


def partition_of(strings, num_partitions: int) -> np.ndarray:
    """A stable hash partition in [0, num_partitions) per string (None -> 0)."""
    return (hash64(strings) % np.uint64(num_partitions)).astype(np.int64)


def removal_result(name: str, table: pa.Table, removed: pa.Table) -> DedupResult:
    """What a pass that removes whole documents returns: ``table`` without ``removed``, with stats
    (documents seen and kept, drops by reason) named ``name``."""
    stats = FilterStats(name)
    stats.seen("document", table.num_rows)
    out = apply_removals(table, removed)
    count_removed(stats, removed)
    stats.kept("document", out.num_rows)
    return DedupResult(out, removed, stats)
