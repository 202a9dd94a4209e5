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

A task holds its partition's rows (edges / K on average); the rows of one node are grouped in one task,
so a star's centre brings its whole component into one task: a component larger than a task's memory is
not split (the greedy removal after it needs the whole component in one task anyway).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from pipeline import shuffle as fs
from pipeline.rounds import GroupedWriter, Index, IndexBuilder, ShufflePlan, drop_part, merge_rounds, slot_of

FLUSH_BYTES = 64 << 20
MAX_STEPS = 400  # far above O(log^2 n) for any graph that fits a cluster; a guard against a bug looping


def write_partitioned(t: pa.Table, part: np.ndarray, out_path: str, bounds: np.ndarray | None = None):
    """``t`` as an Arrow IPC file, one record batch per value of ``part``; returns (path, each batch's part).
    With ``bounds`` (a multi-round shuffle): one batch per slot of ``bounds``, the rows keeping their part
    as ``_part``."""
    out = GroupedWriter(out_path, 1 << 62)
    try:
        if bounds is None:
            out.add(t, part)
        else:
            out.add(t.append_column("_part", pa.array(part, pa.int64())), slot_of(bounds, part))
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


def star_labels_of(locs) -> tuple[np.ndarray, np.ndarray]:
    """:func:`star_labels` of the rows that ``locs`` names, read a record batch at a time: it holds one batch
    and the partition's distinct nodes, not its rows (a star's centre has a row for every node of its
    component)."""
    nodes, low = [], []
    for path, idx in locs or ():
        for b in fs.iter_ipc_batches(path, idx):
            if b.num_rows:
                n, m = _node_extremes(b.column("u").to_numpy(), b.column("v").to_numpy())
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
    x, y, unsettled = _step(read_rows(locs, EDGE_SCHEMA), large)
    path, labels = write_edges(x, y, K, out_path, bounds) if len(x) else (None, np.zeros(0, np.int64))
    return [(path, labels)], {"unsettled": unsettled, "edges": len(x)}


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
