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
    each batch's label. The rows are gathered into one record batch and each group written as a zero-copy
    slice of it (not sliced, combined and split again a group: 20k rows, 16 groups -8% CPU, 200 groups -25%)."""
    order = np.argsort(label, kind="stable")
    label = label[order]
    starts = np.flatnonzero(np.concatenate([[True], label[1:] != label[:-1]]))
    ends = np.append(starts[1:], len(label))
    t = t.take(pa.array(order))
    batches = t.combine_chunks().to_batches()
    if len(batches) != 1:  # (a column too large for one chunk) a group's batches made one by one
        out = []
        for lo, hi in zip(starts.tolist(), ends.tolist()):
            for b in t.slice(lo, hi - lo).combine_chunks().to_batches():
                writer.write_batch(b)
                out.append(int(label[lo]))
        return out
    whole = batches[0]
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        writer.write_batch(whole.slice(lo, hi - lo))
    return label[starts].tolist()


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

    def add_partitioned(self, t: pa.Table, part: np.ndarray, bounds: np.ndarray | None = None) -> None:
        """``t``'s rows labelled by their partition ``part``; with ``bounds`` (a multi-round shuffle) by their
        slot of ``bounds``, each row keeping its partition as ``_part``."""
        if bounds is None:
            self.add(t, part)
        else:
            self.add(t.append_column(PART, pa.array(part, pa.int64())), slot_of(bounds, part))

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


class _Grow:
    """A numpy array appended to in place: an index of millions of entries is a few flat arrays, not a Python
    object per entry. The buffer grows by a quarter and is trimmed with ``ndarray.resize`` (``realloc``: a
    large buffer is remapped, not copied beside itself), so it holds at most 1.25x its values."""

    def __init__(self, dtype):
        self.a = np.zeros(1024, dtype)
        self.n = 0

    def extend(self, x: np.ndarray) -> None:
        need = self.n + len(x)
        if need > len(self.a):
            self.a.resize(max(need, len(self.a) + len(self.a) // 4), refcheck=False)  # (the only reference)
        self.a[self.n:need] = x
        self.n = need

    def take(self) -> np.ndarray:
        """The values (the buffer itself, trimmed to them); the builder is empty after."""
        a, n = self.a, self.n
        self.a, self.n = np.zeros(0, a.dtype), 0
        a.resize(n, refcheck=False)
        return a


class Index:
    """Where each label's (partition's or slot's) rows are: record batches of IPC files.

    Three parallel arrays sorted by (label, file, batch) (16 bytes an entry) and the files' paths (one
    string per file, not per entry). The dict of lists it replaces (``{label: [(path, [batch, ...])]}``)
    cost ~130 bytes an entry in the driver: ~3.4 GB for the largest merge round of 25 snapshots.

    The index takes the arrays it is given (they are sorted in place: at the peak the driver holds them,
    the sort order and one array being permuted, ~32 bytes an entry). ``ordered``: the entries are in
    (file, batch) order, or such runs of disjoint files one after the other, each run's files after the
    last's (what :class:`IndexBuilder` gets from in-order results): a stable sort by label alone orders them."""

    def __init__(self, files: list, label: np.ndarray, file: np.ndarray, batch: np.ndarray, ordered: bool = False):
        order = np.argsort(label, kind="stable") if ordered else np.lexsort((batch, file, label))
        for a in (label, file, batch):
            a[:] = a[order]  # (one array's temporary at a time)
        del order
        # only the files an entry points to, renumbered in order
        used = np.flatnonzero(np.bincount(file, minlength=len(files)))
        remap = np.zeros(len(files), np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        file[:] = remap[file]
        self.label, self.file, self.batch = label, file, batch
        self.files = [files[i] for i in used.tolist()]
        n = len(self.label)
        first = np.flatnonzero(np.concatenate([[True], self.label[1:] != self.label[:-1]])) if n \
            else np.zeros(0, np.int64)
        self.keys = self.label[first]  # the labels, sorted
        self.starts = np.append(first, n).astype(np.int64)

    def __len__(self) -> int:
        """Labels held."""
        return len(self.keys)

    @property
    def entries(self) -> int:
        return len(self.label)

    def nbytes(self) -> int:
        return self.label.nbytes + self.file.nbytes + self.batch.nbytes + self.keys.nbytes + self.starts.nbytes

    def group(self, g: int) -> list[tuple[str, list[int]]]:
        """The ``g``-th label's [(IPC file, batch indices)], files in order."""
        lo, hi = int(self.starts[g]), int(self.starts[g + 1])
        f, b = self.file[lo:hi], self.batch[lo:hi]
        cut = np.flatnonzero(f[1:] != f[:-1]) + 1
        return [(self.files[int(ff[0])], bb.tolist()) for ff, bb in zip(np.split(f, cut), np.split(b, cut))]

    def get(self, label: int) -> list[tuple[str, list[int]]] | None:
        """``label``'s [(IPC file, batch indices)], None when it has no rows."""
        g = int(np.searchsorted(self.keys, label))
        return self.group(g) if g < len(self.keys) and self.keys[g] == label else None

    def files_per_label(self) -> np.ndarray:
        """How many files hold each label."""
        if not len(self.label):
            return np.zeros(0, np.int64)
        new = np.concatenate([[True], (self.file[1:] != self.file[:-1]) | (self.label[1:] != self.label[:-1])])
        return np.add.reduceat(new.astype(np.int64), self.starts[:-1])

    def select(self, keep: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """(files, label, file, batch) of the labels where ``keep`` (one bool per label)."""
        mask = np.repeat(keep, np.diff(self.starts))
        return self.files, self.label[mask], self.file[mask], self.batch[mask]


class IndexBuilder:
    """An :class:`Index` from task results (path, label of each batch) as they arrive: result ``i`` is
    file ``i`` (the order of the calls, whatever the order of arrival); a result without a path holds
    nothing."""

    def __init__(self):
        self.files: list = []
        self.label, self.file, self.batch = _Grow(np.int64), _Grow(np.int32), _Grow(np.int32)
        self.last = -1
        self.ordered = True  # results added in call order (so far): entries in (file, batch) order

    def add(self, i: int, path: str | None, labels) -> None:
        labels = np.asarray(labels, np.int64)
        if path is None or not len(labels):
            return
        self.ordered = self.ordered and i > self.last
        self.last = i
        if i >= len(self.files):
            self.files.extend([None] * (i + 1 - len(self.files)))
        self.files[i] = path
        self.label.extend(labels)
        self.file.extend(np.full(len(labels), i, np.int32))
        self.batch.extend(np.arange(len(labels), dtype=np.int32))

    def build(self, base: tuple | None = None) -> Index:
        """The index, with ``base`` ((files, label, file, batch) from :meth:`Index.select`, whose labels the
        new entries do not hold) before the new files."""
        label, file, batch = self.label.take(), self.file.take(), self.batch.take()
        files, self.files = self.files, []
        ordered, self.ordered, self.last = self.ordered, True, -1
        if base is not None:  # (sorted by label, so still ordered runs: its files, then the new ones)
            bfiles, blabel, bfile, bbatch = base
            files = list(bfiles) + files
            label = np.concatenate([blabel, label])
            file = np.concatenate([bfile, file + len(bfiles)]).astype(np.int32)
            batch = np.concatenate([bbatch, batch])
        return Index(files, label, file, batch, ordered)


def locations(outs) -> Index:
    """The :class:`Index` of (path, label of each batch) pairs, files in order."""
    b = IndexBuilder()
    for i, (path, labels) in enumerate(outs):
        b.add(i, path, labels)
    return b.build()


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


def _merge_calls(index: Index, todo: np.ndarray, width: np.ndarray, nxt: np.ndarray, rdir: str, f: int,
                 flush_bytes: int):
    """The merge tasks' calls of one round, made one at a time: per slot to merge (``todo``: its position
    in ``index``), one task per ``f`` of its files, splitting it into its finer slots of ``nxt``."""
    for g in todo.tolist():
        lo = int(index.keys[g])
        sub = nxt[np.searchsorted(nxt, lo):np.searchsorted(nxt, lo + int(width[g])) + 1]
        entries = index.group(g)
        for j in range(0, len(entries), f):
            yield entries[j:j + f], sub, fs.join(rdir, f"{lo:09d}-{j // f:06d}.arrow"), flush_bytes


def merge_rounds(backend: Backend, index: Index, plan: ShufflePlan, workdir: str,
                 flush_bytes: int | None = None) -> Index:
    """Merge map outputs (``index``: slots of ``plan.top``) in rounds until each partition is held by at
    most ``plan.fan_in`` files; returns the index of the partitions.

    A slot that is already one partition in at most F files is left where it is; a file is removed as
    soon as no slot still points to it (every slot it holds has been merged). The driver holds the index
    (flat arrays) and one task's call at a time: the calls are made as the backend takes them."""
    f = plan.fan_in
    bounds = plan.top
    for r in range(1, len(plan.rounds) + 2):
        width = bounds[np.searchsorted(bounds, index.keys) + 1] - index.keys
        todo = (width > 1) | (index.files_per_label() > f)
        if not todo.any():
            break
        if r > len(plan.rounds):  # cannot happen: actual files per slot never exceed the plan's
            raise RuntimeError("the shuffle needs more merge rounds than planned")
        rdir = fs.join(workdir, f"round-{r}")
        fs.make_dirs(rdir)
        nxt = refine(bounds, f)

        merged = IndexBuilder()
        calls = _merge_calls(index, np.flatnonzero(todo), width, nxt, rdir, f, flush_bytes or FLUSH_BYTES)
        for i, (path, labels) in enumerate(backend.imap(_merge_task, calls)):
            merged.add(i, path, labels)
        kept = index.select(~todo)
        read = np.unique(index.file[np.repeat(todo, np.diff(index.starts))])
        for i in np.setdiff1d(read, np.unique(kept[2])).tolist():
            fs.remove_file(index.files[i])
        index = calls = None  # the round's index is gone before the next one is sorted (the driver's peak)
        index = merged.build(kept)
        bounds = nxt
    return index


def drop_part(t: pa.Table) -> pa.Table:
    """``t`` without the ``_part`` column the merge rounds carry."""
    return t.drop_columns([PART]) if PART in t.column_names else t
