"""The MinHash greedy removal over one component partition in bounded memory.

:func:`filters.dedup.minhash.greedy_removals` keeps a node iff none of its more recent neighbours is kept,
so it is one pass over the nodes in rank order with one state a node, each node looking at its edges to
more recent nodes. This module runs that pass over a partition's labelled node rows and edge rows read
from files, holding per node only compact arrays (its 64-bit hash, its rank and its state: ~14 bytes)
and never more than one bucket of spilled rows (``budget`` bytes, :data:`SPILL_BYTES` by default). A
partition under :data:`SMALL_BYTES` of rows is read whole and decided in memory instead (the same removals);
a larger one in four passes:

1. the distinct node hashes (sorted; the node's index is its place among them), the bytes of the
   recency keys and a sample of them (to cut the keys into ranges of about ``budget`` bytes);
2. the dense ranks: each node's recency key (the :func:`recency_rank` order: its first row's ``rec``
   and ``doc_id``, ties by hash) spilled by key range, each range sorted in memory in turn;
3. each edge as (rank of its less recent end, rank of its more recent end) spilled by the first's range;
   windows of consecutive ranges (about ``budget`` bytes of edges) decided in rank order
   (:func:`filters.dedup.minhash.greedy_window`); a node has at most two edges a band to more recent
   nodes (its buckets' heads and predecessors, :func:`bucket_edges`), so no range is much over it;
4. the removed nodes' rows (doc_id, file) spilled by node index range, each range de-duplicated and
   sorted by (hash, file), so the routed rows are those (and in the order) the in-memory task wrote.

Spills are Arrow IPC files in a local temporary folder (``tempfile``, also when the work folder is on
object storage), removed at the end. The node files are read three times (1, 2 and 4) and the edge files
once. Written by hand: no chosen library sorts out of core (Arrow sorts in memory; Ray Data's sort is a
cluster shuffle, not a step inside a task).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.common import REMOVED_SCHEMA
from filters.dedup.minhash import REASON, REMOVED, UNDECIDED, greedy_window, recency_key
from pipeline import shuffle as fs
from pipeline.components import read_batches, write_partitioned
from pipeline.rounds import GroupedWriter

# Bytes of spilled rows held in memory at once (one key range, one window of edges, one range of removed
# rows); a task's peak is ~3x that (the rows, their sort order and the sorted copy) plus ~14 bytes a node
SPILL_BYTES = 32 << 20
BATCH_ROWS = 1 << 16  # rows of the node and edge files handled at once
SAMPLE = 16384  # recency keys sampled to cut the key ranges
EDGE_RANGES = 4096  # at most this many rank ranges of edges (consecutive ones are read as one window)
# A partition whose node and edge rows are under this many bytes is decided in memory by
# greedy_partition_in_memory's algorithm: the same removals at about a third of the spilled passes' CPU on
# the bench corpus's small partitions (their passes and spill files' fixed cost) and ~2/3 at 1.4 MB of rows
# (10k nodes, half removed: 0.05 against 0.08 CPU s, 13 against 25 MB of peak growth); from ~3 MB the
# in-memory pass's Python loop over the removed nodes costs more than the spilled vectorised windows
SMALL_BYTES = 1 << 20


def _batches(locs, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of the rows of ``locs`` ((IPC file, batch indices) pairs), at most BATCH_ROWS at a time."""
    for path, idx in locs or ():
        for b in fs.iter_ipc_batches(path, idx):
            b = b.select(columns)
            for i in range(0, b.num_rows, BATCH_ROWS):
                yield b.slice(i, BATCH_ROWS)


class _Spill:
    """Rows written to one local IPC file labelled by range, read back a run of ranges at a time."""

    def __init__(self, folder: str, name: str, budget: int):
        self.path = os.path.join(folder, name)
        self.writer = GroupedWriter(self.path, max(budget // 4, 1 << 20))
        self.labels = np.zeros(0, np.int64)

    def add(self, t: pa.Table, label: np.ndarray) -> None:
        self.writer.add(t, label)

    def close(self) -> _Spill:
        _, self.labels = self.writer.close()
        return self

    def read(self, lo: int, hi: int) -> pa.Table | None:
        idx = np.flatnonzero((self.labels >= lo) & (self.labels < hi))
        if not len(idx):
            return None
        _, batches = fs.read_ipc_batches(self.path, idx)
        return pa.Table.from_batches(batches)

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


class _PairSpill:
    """(hi, lo) rank pairs spilled to one local file in chunks of about ``budget / 4`` bytes, each sorted
    by ``hi``, with where each rank range of ``width`` starts in it: a window of ranges is read back with
    one seek and one read a chunk (Arrow IPC grouped by range would write a record batch per range and
    chunk; with thousands of ranges that costs more than the scan)."""

    def __init__(self, folder: str, dtype: np.dtype, width: int, ranges: int, budget: int):
        self.path = os.path.join(folder, "edges.bin")
        self.file = open(self.path, "wb")
        self.dtype, self.width, self.ranges = np.dtype(dtype), width, ranges
        self.chunk = max(budget // 4 // (2 * self.dtype.itemsize), 1)
        self.pending: list[np.ndarray] = []
        self.pending_n = self.written = 0
        self.chunks: list[tuple[int, np.ndarray]] = []  # (first pair in the file, start of each range)

    def add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        if len(hi):
            self.pending.append(np.stack([hi, lo], 1).astype(self.dtype))
            self.pending_n += len(hi)
            if self.pending_n >= self.chunk:
                self._flush()

    def _flush(self) -> None:
        if self.pending:
            p = np.concatenate(self.pending)
            p = p[np.argsort(p[:, 0], kind="stable")]
            starts = np.searchsorted(p[:, 0], np.arange(self.ranges + 1, dtype=np.int64) * self.width)
            self.chunks.append((self.written, starts))
            p.tofile(self.file)
            self.written += len(p)
        self.pending, self.pending_n = [], 0

    def close(self) -> np.ndarray:
        """Commit the pairs; the number of pairs in each range."""
        self._flush()
        self.file.close()
        counts = np.zeros(self.ranges, np.int64)
        for _, starts in self.chunks:
            counts += np.diff(starts)
        return counts

    def read(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """The pairs whose ``hi`` is in ranges ``r0 .. r1 - 1``, as (hi, lo)."""
        parts = []
        size = 2 * self.dtype.itemsize
        for base, starts in self.chunks:
            a, b = int(starts[r0]), int(starts[r1])
            if b > a:
                parts.append(np.fromfile(self.path, self.dtype, 2 * (b - a), offset=(base + a) * size).reshape(-1, 2))
        p = np.concatenate(parts) if parts else np.zeros((0, 2), self.dtype)
        return p[:, 0], p[:, 1]

    def remove(self) -> None:
        if not self.file.closed:
            self.file.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def _index_of(uh: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.searchsorted(uh, x)``, the needles sorted first (several times faster on large ``uh``)."""
    order = np.argsort(x)
    out = np.empty(len(x), np.int64)
    out[order] = np.searchsorted(uh, x[order])
    return out


class _Hashes:
    """Pass 1 over the node rows: the sorted distinct hashes, the key and doc_id bytes, a key sample."""

    def __init__(self, seed: int = 0):
        self.uh = np.zeros(0, np.uint64)
        self.pending: list[np.ndarray] = []
        self.pending_n = 0
        self.rows = self.key_bytes = self.id_bytes = 0
        self.rng = np.random.default_rng(seed)
        self.sample = pa.array([], pa.string())
        self.prio = np.zeros(0)

    def add(self, t: pa.RecordBatch) -> None:
        h = t["h"].to_numpy()
        self.pending.append(np.unique(h))
        self.pending_n += len(self.pending[-1])
        if self.pending_n > max(len(self.uh), 1 << 20):
            self._merge()
        self.rows += t.num_rows
        ids = int(pc.sum(pc.binary_length(pc.fill_null(t["doc_id"], ""))).as_py() or 0)
        recs = int(pc.sum(pc.binary_length(pc.fill_null(t["rec"], ""))).as_py() or 0)
        self.id_bytes += ids
        self.key_bytes += ids + recs + t.num_rows
        prio = self.rng.random(t.num_rows)
        cut = np.partition(self.prio, SAMPLE - 1)[SAMPLE - 1] if len(self.prio) >= SAMPLE else 2.0
        take = np.flatnonzero(prio < cut)
        if len(take):
            keys = recency_key(t["rec"].take(pa.array(take)), t["doc_id"].take(pa.array(take)))
            self.sample = pa.concat_arrays([self.sample, keys.cast(pa.string())])
            self.prio = np.concatenate([self.prio, prio[take]])
            if len(self.prio) > 2 * SAMPLE:
                best = np.argpartition(self.prio, SAMPLE - 1)[:SAMPLE]
                self.sample, self.prio = self.sample.take(pa.array(best)), self.prio[best]

    def _merge(self) -> None:
        if self.pending:
            self.uh = np.unique(np.concatenate([self.uh, *self.pending]))
            self.pending, self.pending_n = [], 0

    def distinct(self) -> np.ndarray:
        self._merge()
        return self.uh

    def splitters(self, ranges: int) -> pa.Array:
        """``ranges - 1`` sampled keys cutting the keys into ranges of about equal counts (ascending)."""
        if ranges <= 1 or not len(self.sample):
            return pa.array([], pa.string())
        s = self.sample.take(pc.sort_indices(self.sample))
        at = (np.arange(1, ranges) * len(s)) // ranges
        return s.take(pa.array(np.unique(at)))


def _key_range(keys: pa.Array, splitters: pa.Array) -> np.ndarray:
    """The range of each key: how many splitters are <= it (Arrow's byte order, the order of the ranks)."""
    if not len(splitters):
        return np.zeros(len(keys), np.int64)
    both = pa.concat_arrays([splitters, keys.cast(pa.string())])
    order = pc.sort_indices(both).to_numpy()  # stable: a splitter sorts before a key equal to it
    is_split = order < len(splitters)
    upto = np.cumsum(is_split)
    out = np.empty(len(keys), np.int64)
    out[order[~is_split] - len(splitters)] = upto[~is_split]
    return out


def dense_ranks(node_locs, uh: np.ndarray, splitters: pa.Array, budget: int, folder: str) -> np.ndarray:
    """Pass 2: the :func:`recency_rank` of every node of ``uh`` (0 = most recent), from its first row's
    (rec, doc_id) in read order, ties by hash; keys spilled by range and each range sorted alone."""
    n = len(uh)
    seen = np.zeros(n, bool)
    ranges = len(splitters) + 1
    counts = np.zeros(ranges, np.int64)
    spill = _Spill(folder, "keys.arrow", budget)
    try:
        for t in _batches(node_locs, ["h", "doc_id", "rec"]):
            i = _index_of(uh, t["h"].to_numpy())
            first_i, at = np.unique(i, return_index=True)
            new = ~seen[first_i]
            first_i, at = first_i[new], at[new]
            if not len(at):
                continue
            seen[first_i] = True
            take = pa.array(at)
            keys = recency_key(t["rec"].take(take), t["doc_id"].take(take)).cast(pa.string())
            r = _key_range(keys, splitters)
            counts += np.bincount(r, minlength=ranges)
            spill.add(pa.table({"k": keys, "i": pa.array(first_i, pa.int64())}), r)
        del seen
        spill.close()
        rank = np.empty(n, np.int32 if n < 2**31 else np.int64)
        offset = 0
        for r in range(ranges - 1, -1, -1):  # the largest keys are the most recent
            t = spill.read(r, r + 1)
            if t is None:
                continue
            order = pc.sort_indices(t, sort_keys=[("k", "descending"), ("i", "ascending")])
            rank[t["i"].take(order).to_numpy()] = np.arange(offset, offset + t.num_rows)
            offset += t.num_rows
        if offset != n:
            raise ValueError(f"greedy: {n - offset} nodes without a row")
        return rank
    finally:
        spill.remove()


def greedy_states(edge_locs, uh: np.ndarray, rank: np.ndarray, budget: int, folder: str) -> np.ndarray:
    """Pass 3: each node's state by rank (KEPT / REMOVED), the edges spilled by the rank range of their
    less recent end and decided a window of ranges at a time."""
    n = len(uh)
    width = max(1, -(-n // EDGE_RANGES))
    ranges = -(-n // width)
    spill = _PairSpill(folder, rank.dtype, width, ranges, budget)
    try:
        for t in _batches(edge_locs, ["x", "y"]):
            x, y = t["x"].to_numpy(), t["y"].to_numpy()
            a, b = _index_of(uh, x), _index_of(uh, y)
            ok = (a < n) & (b < n)
            ok[ok] &= (uh[a[ok]] == x[ok]) & (uh[b[ok]] == y[ok])
            if not ok.all():
                raise ValueError(f"greedy: {int((~ok).sum())} edges with an end that is not a node")
            ra, rb = rank[a], rank[b]
            hi, lo = np.maximum(ra, rb), np.minimum(ra, rb)
            keep = hi != lo
            spill.add(hi[keep], lo[keep])
        counts = spill.close()
        state = np.zeros(n, np.uint8)
        per_edge = 2 * rank.dtype.itemsize
        r = 0
        while r < ranges:
            end, size = r + 1, counts[r]
            while end < ranges and (size + counts[end]) * per_edge <= budget:
                size += counts[end]
                end += 1
            hi, lo = spill.read(r, end)
            greedy_window(state, hi, lo, r * width, min(end * width, n))
            del hi, lo
            r = end
        if (state == UNDECIDED).any():
            raise AssertionError("greedy: a node left undecided")
        return state
    finally:
        spill.remove()


def greedy_partition(node_locs, edge_locs, out_path: str, route_bounds=None, budget: int | None = None,
                     flush_bytes: int = 64 << 20, tmp_dir: str | None = None):
    """The greedy removal over one partition's components (labelled node rows and (x, y) edge rows, as
    ``pipeline.dedup._greedy_task`` gets them), in memory bounded by ``budget`` (default
    :data:`SPILL_BYTES`) plus ~14 bytes a node.
    The removed documents are written to ``out_path`` grouped by file (by slot of ``route_bounds``, the
    file kept as ``_part``); returns (path or None, each batch's label, number of removed nodes)."""
    budget = budget or SPILL_BYTES
    small = _read_small(node_locs, edge_locs, min(SMALL_BYTES, budget))
    if small is not None:
        got = _removals_in_memory(*small, check=True)
        if got is None:
            return None, np.zeros(0, np.int64), 0
        rows, fid, removed = got
        path, labels = write_partitioned(rows, fid, out_path, route_bounds)  # under SMALL_BYTES: one flush
        return path, labels, removed
    with tempfile.TemporaryDirectory(prefix="obelics-greedy-", dir=tmp_dir) as folder:
        hashes = _Hashes()
        for t in _batches(node_locs, ["h", "doc_id", "rec"]):
            hashes.add(t)
        uh = hashes.distinct()
        if not len(uh):
            return None, np.zeros(0, np.int64), 0
        key_ranges = max(1, math.ceil(hashes.key_bytes * 2 / budget))  # x2: the key and its index, Arrow's offsets
        rank = dense_ranks(node_locs, uh, hashes.splitters(key_ranges), budget, folder)
        state = greedy_states(edge_locs, uh, rank, budget, folder)
        gone = state[rank] == REMOVED  # by node index
        del state, rank
        removed = int(gone.sum())
        if not removed:
            return None, np.zeros(0, np.int64), 0
        n = len(uh)
        row_bytes = (hashes.id_bytes + 24 * hashes.rows) * removed / n  # expected bytes of the removed rows
        width = max(1, -(-n // max(1, math.ceil(row_bytes * 2 / budget))))
        spill = _Spill(folder, "removed.arrow", budget)
        out = GroupedWriter(out_path, flush_bytes)
        try:
            for t in _batches(node_locs, ["h", "doc_id", "_file"]):
                i = _index_of(uh, t["h"].to_numpy())
                sel = np.flatnonzero(gone[i])
                if len(sel):
                    take = pa.array(sel)
                    spill.add(pa.table({"i": pa.array(i[sel], pa.int64()), "f": t["_file"].take(take),
                                        "doc_id": t["doc_id"].take(take)}), i[sel] // width)
            spill.close()
            for r in range(-(-n // width)):
                t = spill.read(r, r + 1)
                if t is None:
                    continue
                i, f = t["i"].to_numpy(), t["f"].to_numpy()
                _, at = np.unique(np.stack([i, f.astype(np.int64)], 1), axis=0, return_index=True)
                fid = f[at]
                rows = pa.table({"doc_id": t["doc_id"].take(pa.array(at)),
                                 "reason": pa.array([REASON] * len(at), pa.string())}, schema=REMOVED_SCHEMA)
                out.add_partitioned(rows, fid, route_bounds)
            path, labels = out.close()
            return path, labels, removed
        finally:
            out.abort()
            spill.remove()


def _read_small(node_locs, edge_locs, limit: int) -> tuple[pa.Table, pa.Table] | None:
    """The node rows (h, doc_id, rec, _file) and edge rows (x, y) of a partition as tables when together they
    are at most ``limit`` bytes, else None (reading stops at the first batch over it)."""
    size = 0
    out = []
    for locs, columns in ((node_locs, ["h", "doc_id", "rec", "_file"]), (edge_locs, ["x", "y"])):
        batches, schema = [], None
        for path, idx in locs or ():
            for b in fs.iter_ipc_batches(path, idx):
                size += b.nbytes
                if size > limit:
                    return None
                b = b.select(columns)
                schema = b.schema
                batches.append(b)
        out.append(pa.Table.from_batches(batches, schema) if batches else None)
    return out[0], out[1]


def _removals_in_memory(n: pa.Table | None, e: pa.Table | None, check: bool = False):
    """The removed rows of a partition held whole (node rows ``n``, edge rows ``e``): ranked by ``recency_rank``
    and decided by ``greedy_removals``; (rows (doc_id, reason) in (hash, file) order, their files, removed
    nodes), or None when nothing is removed. ``check``: an edge end that is not a node is an error (as in
    :func:`greedy_states`)."""
    from filters.dedup.minhash import greedy_removals, recency_rank

    if n is None or e is None or not n.num_rows or not e.num_rows:
        return None
    h = n["h"].to_numpy()
    uh, first = np.unique(h, return_index=True)
    take = pa.array(first)
    rank = recency_rank(n["rec"].take(take), n["doc_id"].take(take))
    x, y = e["x"].to_numpy(), e["y"].to_numpy()
    a = np.searchsorted(uh, x).astype(np.int64)
    b = np.searchsorted(uh, y).astype(np.int64)
    if check:
        ok = (a < len(uh)) & (b < len(uh))
        ok[ok] &= (uh[a[ok]] == x[ok]) & (uh[b[ok]] == y[ok])
        if not ok.all():
            raise ValueError(f"greedy: {int((~ok).sum())} edges with an end that is not a node")
    by = greedy_removals(len(uh), a, b, rank)
    gone = np.isin(h, uh[by >= 0])
    if not gone.any():
        return None
    rows = np.flatnonzero(gone)
    fid = n["_file"].to_numpy()[rows]
    keep = np.unique(np.stack([h[rows], fid.astype(np.uint64)], 1), axis=0, return_index=True)[1]
    rows, fid = rows[keep], fid[keep]
    removed = pa.table({"doc_id": n["doc_id"].take(pa.array(rows)),
                        "reason": pa.array([REASON] * len(rows), pa.string())}, schema=REMOVED_SCHEMA)
    return removed, fid, int((by >= 0).sum())


def greedy_partition_in_memory(node_locs, edge_locs, c: int, out_path: str, route_bounds):
    """The greedy task before :func:`greedy_partition` (``pipeline.dedup._greedy_task`` up to 7b732e9), kept as
    the oracle of the tests and the "before" of ``bench_dedup --component``: the whole component partition
    read into memory (~2 KB a node), ranked by ``recency_rank`` and decided by ``greedy_removals``. Returns
    (c, path, files, counts) like the task."""
    if not node_locs or not edge_locs:
        return c, None, np.zeros(0, np.int64), {}
    # the files' own schemas (pipeline.dedup's, not imported: it imports this module)
    got = _removals_in_memory(read_batches(node_locs), read_batches(edge_locs))
    if got is None:
        return c, None, np.zeros(0, np.int64), {}
    removed, fid, count = got
    path, parts = write_partitioned(removed, fid, out_path, route_bounds)
    return c, path, parts, {REASON: count}
