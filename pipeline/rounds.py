"""The multi-round shuffle: merges with bounded fan-in between the map and the reduce side of a pass.

One round (every reduce task reads its batch from every map file) costs (map files M x partitions P)
opens, index entries and record batches per pass: both grow with the data, so the term grows as N^2
(25 snapshots: ~6.6 billion opens a pass even with million-document partitions). When M x P exceeds
``dedup.shuffle_single_round_max``, or M exceeds the fan-in F (``dedup.shuffle_fan_in``), the shuffle
runs in rounds instead:

- the map side writes one batch per *slot*: P is split into at most F contiguous ranges of
  partitions; the rows keep their partition in a ``_part`` column;
- a merge task reads one slot's batches from at most F files (one open each) and writes one file with
  that slot split into at most F finer slots (ranges of width 1 are partitions); a slot held by more than
  F files gets a merge task per F of them;
- rounds repeat until every slot is one partition held by at most F files; the reduce task of
  partition p then opens at most F files.

No task opens more than F files; a round opens each file once per slot it holds, about M x F opens a
round, and there are about log_F(P) rounds: total opens grow as N log N, not N^2. Merges read files in
order and sort stably, so each partition's rows reach its reduce task in the same order as in one round
(the same decisions). A merge task buffers at most ``FLUSH_BYTES`` of rows, writes through a temporary
name (renamed when complete) and each round's files are removed once the next round has read them.

:func:`plan_shuffle` is the plan the code follows (single or multi, the slot bounds of each round) and
counts the tasks, opens and batches of every round; ``bench.bench_dedup --plan`` prints it for a
snapshot and for 25.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline import shuffle as fs
from pipeline.shuffle import Backend

FLUSH_BYTES = 64 << 20  # rows a map or merge task buffers before writing them grouped by partition or slot
PART = "_part"  # the column holding each row's partition while slots hold several partitions


def refine(bounds: np.ndarray, fan_in: int) -> np.ndarray:
    """Every slot ``[bounds[i], bounds[i+1])`` split into ``min(fan_in, width)`` near-equal slots."""
    lo, hi = bounds[:-1], bounds[1:]
    k = np.minimum(hi - lo, fan_in)
    idx = np.repeat(np.arange(len(lo)), k)
    j = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    starts = lo[idx] + ((hi - lo)[idx] * j) // k[idx]
    return np.append(starts, bounds[-1]).astype(np.int64)


@dataclass(frozen=True)
class Round:
    """One merge round, counted for the worst case (every file holds every slot it may hold)."""

    slots: int  # slots merged (input side)
    files_per_slot: int
    tasks: int
    opens: int  # a file is opened once per slot it holds
    batches: int  # record batches written (one per output slot per task, one flush)


@dataclass(frozen=True)
class ShufflePlan:
    """How a shuffle of ``map_tasks`` map files into ``partitions`` runs, with its counts."""

    map_tasks: int
    partitions: int
    fan_in: int
    top: np.ndarray | None  # the map side's slot bounds; None: one round (a batch per partition)
    rounds: tuple[Round, ...]
    reduce_opens: int

    @property
    def multi(self) -> bool:
        return self.top is not None

    @property
    def map_batches(self) -> int:
        """Record batches the map side writes (one flush each): one per (map file, partition or slot)."""
        return self.map_tasks * (self.partitions if self.top is None else len(self.top) - 1)

    @property
    def opens(self) -> int:
        """Files opened by the merge and reduce tasks of the pass."""
        return sum(r.opens for r in self.rounds) + self.reduce_opens

    @property
    def batches(self) -> int:
        """Record batches written (map and merges): the index entries a pass handles."""
        return self.map_batches + sum(r.batches for r in self.rounds)

    @property
    def max_task_opens(self) -> int:
        return max([min(r.files_per_slot, self.fan_in) for r in self.rounds]
                   + [self.reduce_opens // max(self.partitions, 1)])


def plan_shuffle(map_tasks: int, partitions: int, fan_in: int, single_round_max: int) -> ShufflePlan:
    """The plan for ``map_tasks`` map files and ``partitions`` partitions: one round when
    ``map_tasks <= fan_in`` and ``map_tasks x partitions <= single_round_max``, else merge rounds."""
    m, p, f = max(map_tasks, 1), max(partitions, 1), max(fan_in, 2)
    if m <= f and m * p <= single_round_max:
        return ShufflePlan(map_tasks, partitions, f, None, (), m * p)
    top = refine(np.array([0, p], np.int64), f)
    bounds, n, rounds = top, m, []
    while n > f or int(np.diff(bounds).max()) > 1:
        slots = len(bounds) - 1
        chunks = math.ceil(n / f)
        bounds = refine(bounds, f)
        rounds.append(Round(slots, n, slots * chunks, slots * n, chunks * (len(bounds) - 1)))
        n = chunks
    return ShufflePlan(map_tasks, partitions, f, top, tuple(rounds), p * n)


# -- writing rows grouped by partition or slot ------------------------------------------------------
def write_sorted(writer, t: pa.Table, label: np.ndarray) -> list[int]:
    """The rows of ``t`` grouped by ``label``, one record batch per group (rows in input order); returns
    each batch's label."""
    order = np.argsort(label, kind="stable")
    label = label[order]
    t = t.take(pa.array(order))
    starts = np.flatnonzero(np.concatenate([[True], label[1:] != label[:-1]]))
    ends = np.append(starts[1:], len(label))
    out = []
    for lo, hi in zip(starts, ends):
        for b in t.slice(lo, hi - lo).combine_chunks().to_batches():
            writer.write_batch(b)
            out.append(int(label[lo]))
    return out


class GroupedWriter:
    """An Arrow IPC file (through a temporary name) of labelled rows: rows are buffered up to
    ``flush_bytes`` and written grouped by label, one record batch per label per flush, so a task holds
    at most a buffer and a label's rows are a few large batches. The first table's schema is the file's."""

    def __init__(self, out_path: str, flush_bytes: int):
        self.out_path, self.flush_bytes = out_path, flush_bytes
        self.tmp = fs.temporary(out_path)
        self.writer = self.schema = None
        self.labels: list[int] = []
        self.pending: list[pa.Table] = []
        self.pending_labels: list[np.ndarray] = []
        self.pending_bytes = 0

    def add(self, t: pa.Table, label: np.ndarray) -> None:
        if not t.num_rows:
            return
        if self.writer is None:
            self.schema = t.schema
            self.writer = fs.ipc_writer(self.tmp, self.schema)
        elif t.schema != self.schema:
            t = t.cast(self.schema)
        self.pending.append(t)
        self.pending_labels.append(label)
        self.pending_bytes += t.nbytes
        if self.pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.labels.extend(write_sorted(self.writer, pa.concat_tables(self.pending),
                                            np.concatenate(self.pending_labels)))
        self.pending, self.pending_labels, self.pending_bytes = [], [], 0

    def close(self) -> tuple[str, np.ndarray]:
        """Commit the file; returns (path, label of each record batch) (no rows: no file, no batch)."""
        try:
            if self.writer is None:
                return self.out_path, np.zeros(0, np.int64)
            self.flush()
            self.writer.close()
            self.writer = None
            fs.commit(self.tmp, self.out_path)
            return self.out_path, np.array(self.labels, np.int64)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        fs.discard(self.tmp)


def slot_of(bounds: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The slot label (its first partition) of each partition in ``part``."""
    return bounds[np.searchsorted(bounds, part, "right") - 1]


def locations(outs: list) -> dict[int, list]:
    """{label: [(IPC file, batch indices)]} from (path, label of each batch) pairs, files in order (one sort
    per file, not one scan per label: a file holds a batch for most labels)."""
    locs: dict[int, list] = defaultdict(list)
    for path, labels in outs:
        labels = np.asarray(labels)
        if not len(labels):
            continue
        order = np.argsort(labels, kind="stable")
        uniq, starts = np.unique(labels[order], return_index=True)
        for p, idx in zip(uniq.tolist(), np.split(order, starts[1:])):
            locs[p].append((path, idx.tolist()))
    return locs


def _merge_task(inputs: list[tuple[str, list[int]]], bounds: np.ndarray, out_path: str,
                flush_bytes: int = FLUSH_BYTES) -> tuple[str, np.ndarray]:
    """One slot's batches from ``inputs`` (at most F files, in order), streamed into one file with one
    batch per finer slot of ``bounds`` per flush. Returns (path, slot label of each batch)."""
    out = GroupedWriter(out_path, flush_bytes)
    try:
        for path, idx in inputs:
            for b in fs.iter_ipc_batches(path, idx):
                t = pa.Table.from_batches([b])
                out.add(t, slot_of(bounds, t[PART].to_numpy()))
        return out.close()
    finally:
        out.abort()


def merge_rounds(backend: Backend, outs: list, plan: ShufflePlan, workdir: str,
                 flush_bytes: int | None = None) -> dict[int, list]:
    """Merge map outputs (path, slot label of each batch; slots of ``plan.top``) in rounds until each
    partition is held by at most ``plan.fan_in`` files; returns {partition: [(file, batch indices)]}.

    A slot that is already one partition in at most F files is left where it is; a file is removed as
    soon as no slot still points to it (every slot it holds has been merged)."""
    f = plan.fan_in
    bounds = plan.top
    locs = locations(outs)
    for r in range(1, len(plan.rounds) + 2):
        width = dict(zip(bounds[:-1].tolist(), np.diff(bounds).tolist()))
        todo = [lo for lo in sorted(locs) if width[lo] > 1 or len(locs[lo]) > f]
        if not todo:
            break
        if r > len(plan.rounds):  # cannot happen: actual files per slot never exceed the plan's
            raise RuntimeError("the shuffle needs more merge rounds than planned")
        rdir = fs.join(workdir, f"round-{r}")
        fs.make_dirs(rdir)
        nxt = refine(bounds, f)
        calls = []
        for lo in todo:
            sub = nxt[np.searchsorted(nxt, lo):np.searchsorted(nxt, lo + width[lo]) + 1]
            for j in range(0, len(locs[lo]), f):
                calls.append((locs[lo][j:j + f], sub, fs.join(rdir, f"{lo:09d}-{j // f:06d}.arrow"),
                              flush_bytes or FLUSH_BYTES))
        read = {path for lo in todo for path, _ in locs[lo]}
        merged = locations(backend.map(_merge_task, calls))
        done = set(todo)
        locs = {lo: v for lo, v in locs.items() if lo not in done} | merged
        live = {path for v in locs.values() for path, _ in v}
        for path in sorted(read - live):
            fs.remove_file(path)
        bounds = nxt
    return locs


def drop_part(t: pa.Table) -> pa.Table:
    """``t`` without the ``_part`` column the merge rounds carry."""
    return t.drop_columns([PART]) if PART in t.column_names else t
