"""Connected components of a graph held as partitioned edge files, found by tasks: the driver holds the
files' index (:class:`pipeline.rounds.Index`) and per-task counts, never a node or an edge.

The graph (the MinHash decision's confirmed near-duplicate edges) is rows ``(u, v)`` of uint64 node ids,
each undirected edge once in each direction, in Arrow IPC files partitioned by ``u % K``. The algorithm is
the alternating Large-Star / Small-Star of Kiveris et al. ("Connected Components in MapReduce and Beyond",
SoCC 2014): each step is one shuffle in which the task of partition q groups its rows by ``u`` and

- large-star links every neighbour ``v > u`` to ``m = min(Γ(u) ∪ {u})``;
- small-star links every neighbour ``v < u``, and ``u``, to the smallest of them.

Neither step changes the components; alternated, they reach stars centred on each component's smallest
id in O(log² n) steps (O(log n) in practice). Every task also counts the nodes of its *input* that are not
yet in such a star (a centre has only larger neighbours, a leaf exactly one, smaller, neighbour); when the
count summed over the tasks is 0 the input is the answer: ``label(u) = min(u, min Γ(u))``
(:func:`star_labels`). Hand-written because no chosen library finds components out of core (Ray Data has
no graph operations; scipy's ``connected_components`` needs the whole graph in one process).

A task holds its partition's rows (edges / K on average) up to ``STEP_BYTES``; the rows of one node are
grouped in one task, so a star's centre (or a hub: a document most of its component links to) brings a row
for every node of its component into one task. Past ``STEP_BYTES`` the task spills its rows to a local
temporary file in ranges by a hash of the row and makes two passes over the ranges
(:func:`_step_spilled`), so it holds one range and its partition's distinct nodes, not its rows;
:func:`star_labels_of` reads the star rows a record batch at a time for the same reason.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from filters.dedup.minhash import _mix
from pipeline import shuffle as fs
from pipeline.rounds import GroupedWriter, Index, IndexBuilder, ShufflePlan, drop_part, merge_rounds

FLUSH_BYTES = 64 << 20
STEP_BYTES = 32 << 20  # a step's partition rows held in memory (~10x that at its peak); more are spilled (_step_spilled)
SPILL_RANGES = 256  # ranges a spilled partition's rows are cut into (by a hash of the row, _spill_range)
REDUCE_NODES = 1 << 20  # a spilled step re-reduces its per-range node extremes past this many (and twice the last)
MAX_STEPS = 400  # far above O(log^2 n) for any graph that fits a cluster; a guard against a bug looping


def write_partitioned(t: pa.Table, part: np.ndarray, out_path: str, bounds: np.ndarray | None = None):
    """``t`` as an Arrow IPC file, one record batch per value of ``part``; returns (path, each batch's part).
    With ``bounds`` (a multi-round shuffle): one batch per slot of ``bounds``, the rows keeping their part
    as ``_part``."""
    out = GroupedWriter(out_path, 1 << 62)
    try:
        out.add_partitioned(t, part, bounds)
        return out.close()
    finally:
        out.abort()


def read_batches(locs: list[tuple[str, list[int]]] | None, schema: pa.Schema | None = None) -> pa.Table:
    """The record batches ``locs`` names ((IPC file, batch indices) pairs) as one table (``schema``'s empty
    table when ``locs`` is None or empty)."""
    batches = []
    for path, idx in locs or ():
        schema, got = fs.read_ipc_batches(path, idx)
        batches.extend(got)
    return pa.Table.from_batches(batches, schema)


def read_rows(locs, schema: pa.Schema) -> pa.Table:
    """:func:`read_batches` without the merge rounds' ``_part`` column; empty with ``schema`` when no rows."""
    if not locs:
        return schema.empty_table()
    return drop_part(read_batches(locs))


EDGE_SCHEMA = pa.schema([("u", pa.uint64()), ("v", pa.uint64())])


def write_edges(x: np.ndarray, y: np.ndarray, K: int, out_path: str, bounds: np.ndarray | None = None):
    """Undirected edges (x, y) as rows (u, v) in both directions, partitioned by ``u % K``."""
    u = np.concatenate([x, y]).astype(np.uint64)
    v = np.concatenate([y, x]).astype(np.uint64)
    return write_partitioned(pa.table({"u": u, "v": v}), (u % np.uint64(K)).astype(np.int64), out_path, bounds)


def _grouped(t: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique (u, v) rows sorted by (u, v), and each group of ``u``'s start and its node."""
    u, v = t["u"].to_numpy(), t["v"].to_numpy()
    if len(u):
        pairs = np.unique(np.stack([u, v], 1), axis=0)
        u, v = pairs[:, 0], pairs[:, 1]
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]])) if len(u) else np.zeros(0, np.int64)
    return u, v, starts, u[starts]


def star_labels(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, component label of each) from a star forest's rows: ``min(u, min Γ(u))``."""
    u, v, starts, nodes = _grouped(t)
    if not len(u):
        return nodes, nodes
    return nodes, np.minimum(nodes, np.minimum.reduceat(v, starts))


def _node_extremes(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``u`` and the smallest ``v`` of each."""
    order = np.argsort(u, kind="stable")
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
    return u[starts], np.minimum.reduceat(v, starts)


def _row_batches(locs) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(u, v) of the rows ``locs`` names, a record batch at a time."""
    for path, idx in locs or ():
        for b in fs.iter_ipc_batches(path, idx):
            if b.num_rows:
                yield b.column("u").to_numpy(), b.column("v").to_numpy()


def star_labels_of(locs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`star_labels` of the rows that ``locs`` names, read a record batch at a time: it holds one batch
    and the partition's distinct nodes, not its rows (a star's centre has a row for every node of its
    component)."""
    nodes, low = [], []
    for u, v in _row_batches(locs):
        n, m = _node_extremes(u, v)
        nodes.append(n)
        low.append(m)
    if not nodes:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    nodes, low = _node_extremes(np.concatenate(nodes), np.concatenate(low))
    return nodes, np.minimum(nodes, low)


def _step(t: pa.Table, large: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """One Large-Star (``large``) or Small-Star step on one partition's rows: the new undirected edges
    (x, y) and how many nodes of the input were not settled in a star."""
    u, v, starts, nodes = _grouped(t)
    if not len(u):
        return u, v, 0
    deg = np.diff(np.append(starts, len(u)))
    gmin = np.minimum.reduceat(v, starts)
    gmax = np.maximum.reduceat(v, starts)
    centre = gmin > nodes
    leaf = (deg == 1) & (gmax < nodes)
    unsettled = int((~(centre | leaf)).sum())
    m = np.minimum(nodes, gmin)  # min over Γ(u) ∪ {u}; also min over {v <= u} ∪ {u} (the smallest v is it)
    mr = np.repeat(m, deg)
    if large:
        sel = v > u
        x, y = v[sel], mr[sel]
    else:
        sel = (v < u) & (v != mr)
        own = m != nodes
        x, y = np.concatenate([v[sel], nodes[own]]), np.concatenate([mr[sel], m[own]])
    return x, y, unsettled


def _step_task(locs, large: bool, K: int, out_path: str, bounds: np.ndarray | None):
    """One step on partition q's rows: in memory (:func:`_step`) when they are at most STEP_BYTES, else
    :func:`_step_spilled` (a star's centre has a row for every node of its component)."""
    held, size = [], 0
    rows = _row_batches(locs)
    for u, v in rows:
        held.append((u, v))
        size += u.nbytes + v.nbytes
        if size > STEP_BYTES:
            rows = itertools.chain(held, rows)  # the chain lets go of the held rows once spilled
            del held
            return _step_spilled(rows, large, K, out_path, bounds)
    t = pa.table({"u": pa.array(np.concatenate([u for u, _ in held]) if held else np.zeros(0, np.uint64)),
                  "v": pa.array(np.concatenate([v for _, v in held]) if held else np.zeros(0, np.uint64))})
    del held
    x, y, unsettled = _step(t, large)
    path, labels = write_edges(x, y, K, out_path, bounds) if len(x) else (None, np.zeros(0, np.int64))
    return [(path, labels)], {"unsettled": unsettled, "edges": len(x)}


def _spill_range(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The spill range of each row (u, v): a splitmix64 of the row modulo SPILL_RANGES, so the ranges get
    about as many rows whatever the ids' structure (pHash's ids are ``call << 32 | position``: their top
    bits are 0; a node's rows all share its ``u``, the rows to a hub all share their ``v``); a repeated row
    keeps its range."""
    return (_mix(u * np.uint64(0x9E3779B97F4A7C15) + v) % np.uint64(SPILL_RANGES)).astype(np.int64)


def _extremes(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nodes, smallest, largest neighbour) parts reduced to the sorted distinct nodes and the extremes of each."""
    nodes = np.concatenate([p[0] for p in parts])
    order = np.argsort(nodes, kind="stable")
    nodes = nodes[order]
    starts = np.flatnonzero(np.concatenate([[True], nodes[1:] != nodes[:-1]]))
    gmin = np.minimum.reduceat(np.concatenate([p[1] for p in parts])[order], starts)
    gmax = np.maximum.reduceat(np.concatenate([p[2] for p in parts])[order], starts)
    return nodes[starts], gmin, gmax


def _step_spilled(rows: Iterable[tuple[np.ndarray, np.ndarray]], large: bool, K: int, out_path: str,
                  bounds: np.ndarray | None):
    """:func:`_step` over rows spilled to a local temporary file by :func:`_spill_range` (a hash of the
    row): one pass over the ranges for each node's smallest and largest neighbour (reduced across the
    ranges; a node is a leaf iff they are equal and below it), one for the new edges (each row's are its
    own, given its node's minimum). A repeated row stays in its range, where it is de-duplicated, so each
    distinct row is stepped once. Holds one range (~1/SPILL_RANGES of the rows), the partition's distinct
    nodes and an output buffer of ``STEP_BYTES / 2``; writes the rows :func:`_step` writes (the same per
    partition, in another order) and the same counts."""
    with tempfile.TemporaryDirectory(prefix="obelics-step-") as folder:
        spill = GroupedWriter(os.path.join(folder, "rows.arrow"), max(STEP_BYTES // 4, 1 << 16))
        try:
            for u, v in rows:
                spill.add(pa.table({"u": pa.array(u, pa.uint64()), "v": pa.array(v, pa.uint64())}),
                          _spill_range(u, v))
            path, labels = spill.close()
        finally:
            spill.abort()

        def ranges() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for r in np.unique(labels):
                _, got = fs.read_ipc_batches(path, np.flatnonzero(labels == r))
                t = pa.Table.from_batches(got)
                pairs = np.unique(np.stack([t["u"].to_numpy(), t["v"].to_numpy()], 1), axis=0)
                yield pairs[:, 0], pairs[:, 1]

        parts, held, reduced = [], 0, 0
        for u, v in ranges():
            starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
            parts.append((u[starts], np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)))
            held += len(starts)
            if held > 2 * reduced + REDUCE_NODES:  # a node is in up to SPILL_RANGES ranges: O(distinct nodes)
                parts = [_extremes(parts)]
                held = reduced = len(parts[0][0])
        nodes, gmin, gmax = _extremes(parts)
        del parts
        unsettled = int((~((gmin > nodes) | ((gmin == gmax) & (gmax < nodes)))).sum())
        m = np.minimum(nodes, gmin)
        out = GroupedWriter(out_path, min(FLUSH_BYTES, STEP_BYTES // 2))  # ~3x at a flush (labels, concat, sort)
        edges = 0
        try:
            def emit(x: np.ndarray, y: np.ndarray) -> None:
                nonlocal edges
                edges += len(x)
                uu, vv = np.concatenate([x, y]), np.concatenate([y, x])
                part = (uu % np.uint64(K)).astype(np.int64)
                t = pa.table({"u": pa.array(uu, pa.uint64()), "v": pa.array(vv, pa.uint64())})
                out.add_partitioned(t, part, bounds)

            for u, v in ranges():
                mr = m[np.searchsorted(nodes, u)]
                sel = (v > u) if large else ((v < u) & (v != mr))
                emit(v[sel], mr[sel])
            if not large:
                own = m != nodes
                emit(nodes[own], m[own])
            result = out.close()
        finally:
            out.abort()
    return [result if edges else (None, np.zeros(0, np.int64))], {"unsettled": unsettled, "edges": edges}


def run_stage(backend, task: Callable, calls: Iterable[tuple], outputs: int, plans: list[ShufflePlan | None],
              work: str) -> tuple[list[Index], Counter]:
    """Run ``task(*call)`` for each call on ``backend``; each returns ([(path, labels)] * ``outputs``,
    counts). Returns one :class:`Index` per output (call i's file is file i of each), merged in rounds when
    its plan says so, and the counts summed."""
    builders = [IndexBuilder() for _ in range(outputs)]
    counts: Counter = Counter()
    for i, (outs, c) in enumerate(backend.imap(task, calls)):
        for b, (path, labels) in zip(builders, outs):
            b.add(i, path, labels)
        counts.update(c)
    out = []
    for j, (b, plan) in enumerate(zip(builders, plans)):
        idx = b.build()
        if plan is not None and plan.multi:
            idx = merge_rounds(backend, idx, plan, fs.join(work, f"merge-{j}"), FLUSH_BYTES)
        out.append(idx)
    return out, counts


def star_components(backend, edges: Index, K: int, plan: ShufflePlan, work: str) -> tuple[Index, int]:
    """The star forest of ``edges`` (rows (u, v) both ways, partitioned by ``u % K``; ``plan``: a shuffle
    of K files into K partitions): its index (``edges`` itself when already stars) and the steps run.
    The files of ``edges`` are left in place; every step's own files are removed once read."""
    cur, prev_dir = edges, None
    for step in range(MAX_STEPS):
        sdir = fs.join(work, f"step-{step:03d}")
        fs.make_dirs(sdir)
        calls = ((cur.group(g), step % 2 == 0, K, fs.join(sdir, f"{int(cur.keys[g]):06d}.arrow"), plan.top)
                 for g in range(len(cur)))
        (new,), counts = run_stage(backend, _step_task, calls, 1, [plan], sdir)
        if counts["unsettled"] == 0:
            fs.remove_tree(sdir)
            return cur, step
        if prev_dir is not None:
            fs.remove_tree(prev_dir)
        cur, prev_dir = new, sdir
    raise RuntimeError(f"connected components did not converge in {MAX_STEPS} steps")
