"""The output step spread over tasks: every file of the dataset written by a task, not by the driver.

The units' Parquet footers give each unit's number of documents, so the rows of each output shard (which
units, which row ranges: :class:`Piece`) are known before anything is read. Then:

1. one task per shard ``k`` (:func:`shard_task`) reads its rows, writes the files of the ``"shards"``
   writers (Parquet: ``train-k-of-n``), and returns the shard's flow counts, its documents' distribution
   values and, for each ``"spans"`` writer (WebDataset), every document's size;
2. the driver takes the shards' results in shard order: it sums the counts, feeds the distributions'
   reservoirs (the same values in the same order as one pass over the run, so the same sample) and cuts the
   run into the ``"spans"`` writers' files (:meth:`~pipeline.writers.base.Writer.planner`);
3. one task per such file (:func:`span_task`) reads its rows and writes it (a tar: the same members, names
   and sizes as the sequential writer's, since the cut follows the same rule on the same sizes).

``"sequential"`` writers (plugins that only define ``open``/``write``/``close``) still get every shard in
order in the driver. Tasks run on Ray when the run does (at most a few per CPU in flight, results taken in
order), in-process otherwise: the same functions. They read the work folder and write the output through
:mod:`obelics.storage` only (local or ``s3://``, nothing assumes the driver's disk), every file under a
temporary name renamed when complete (an object store: one upload, complete or absent), so a killed task
leaves no file that reads as done; Ray retries it, and a rerun of a killed run redoes the output step
(the same files, rewritten).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from obelics import storage
from obelics.document import DOCUMENT_SCHEMA
from pipeline.writers.base import Writer, write_with, writers_for
from pipeline.writers.config import OutputConfig
from pipeline.writers.units import _clean_general_metadata, _unit_paths, shard_tables, unit_tables

log = logging.getLogger("obelics.run")


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one unit's final Parquet."""

    path: str
    start: int
    stop: int


FOOTERS_PER_TASK = 256  # units whose footers one task reads (a run of thousands of units: requests spread)


def _footer_counts(work: str, stage: str | None, units: list[str]) -> list[tuple[str, int]]:
    out = []
    for path in _unit_paths(work, stage, units):
        f = storage.parquet_file(path)
        try:
            out.append((path, f.metadata.num_rows))
        finally:
            f.close()
    return out


def unit_counts(work: str, stage: str | None, units: list[str], use_ray: bool = False) -> list[tuple[str, int]]:
    """``(path, documents)`` of every unit's final Parquet, in unit order (footers only), read by tasks of
    ``FOOTERS_PER_TASK`` units: the driver makes no request per unit (on an object store each is a round trip)."""
    calls = [(work, stage, units[i:i + FOOTERS_PER_TASK]) for i in range(0, len(units), FOOTERS_PER_TASK)]
    return [c for counts in in_order(_footer_counts, calls, use_ray) for c in counts]


def pieces_of(counts: list[tuple[str, int]], start: int, stop: int) -> list[Piece]:
    """The pieces of units holding the run's rows ``[start, stop)`` (units in order, empty ones skipped)."""
    out, base = [], 0
    for path, n in counts:
        a, b = max(start, base), min(stop, base + n)
        if a < b:
            out.append(Piece(path, a - base, b - base))
        base += n
        if base >= stop:
            break
    return out


def read_piece(piece: Piece) -> pa.Table:
    """A piece's documents (only the row groups that hold them are read), private metadata removed."""
    f = storage.parquet_file(piece.path)
    try:
        md = f.metadata
        groups, first, base = [], None, 0
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if base < piece.stop and base + n > piece.start:
                groups.append(g)
                first = base if first is None else first
            base += n
        if not groups:
            return DOCUMENT_SCHEMA.empty_table()
        t = f.read_row_groups(groups).slice(piece.start - first, piece.stop - piece.start)
    finally:
        f.close()
    return _clean_general_metadata(t.select(DOCUMENT_SCHEMA.names).cast(DOCUMENT_SCHEMA))


def read_pieces(pieces: list[Piece]) -> pa.Table:
    """The documents of ``pieces``, in order, in one table."""
    tables = [read_piece(p) for p in pieces]
    return pa.concat_tables(tables) if tables else DOCUMENT_SCHEMA.empty_table()


def _images(image_table_dir: str | None):
    from pipeline.images.table import ImageTable

    return ImageTable(image_table_dir) if image_table_dir else None


def _filled(part: pa.Table, images, writers: list[Writer]) -> pa.Table:
    if images is not None and any(w.needs_image_bytes for w in writers):
        from pipeline.images.merge import fill_image_bytes

        return fill_image_bytes(part, images)
    return part


def shard_task(k: int, shards: int, pieces: list[Piece], dest: str, cfg: OutputConfig,
               image_table_dir: str | None) -> dict:
    """Shard ``k`` of the run (in a task): its ``"shards"`` writers' files written, and what the driver needs:
    ``flow`` counts, ``dists`` (each document's value, in order), ``outputs`` and ``sizes`` by format."""
    from pipeline.report.funnel import document_distributions, flow_counts

    part = read_pieces(pieces)
    rows = part.select(["texts", "images"]).to_pylist()
    result = {"k": k, "flow": dict(flow_counts(rows)), "dists": document_distributions(rows),
              "outputs": {}, "sizes": {}}
    del rows
    writers = writers_for(cfg)
    images = _images(image_table_dir)
    spans = [(name, w) for name, w in zip(cfg.formats, writers) if w.mode == "spans"]
    for name, w in spans:  # before the bytes are filled: sizes come from the image table's lengths
        result["sizes"][name] = w.measure(part, images)
    per_shard = [(name, w) for name, w in zip(cfg.formats, writers) if w.mode == "shards"]
    if per_shard:
        filled = _filled(part, images, [w for _, w in per_shard])
        for name, w in per_shard:
            result["outputs"][name] = w.write_shard(dest, filled, k, shards)
    return result


def span_task(name: str, index: int, pieces: list[Piece], dest: str, cfg: OutputConfig,
              image_table_dir: str | None, size: int) -> list[dict]:
    """File ``index`` of the ``"spans"`` writer ``name`` (in a task); returns its stats."""
    w = dict(zip(cfg.formats, writers_for(cfg)))[name]
    part = _filled(read_pieces(pieces), _images(image_table_dir), [w])
    return w.write_span(dest, part, index, size)


def in_order(fn: Callable, calls: list[tuple], use_ray: bool, window: int | None = None) -> Iterator:
    """``fn(*args)`` of every call, results in call order: Ray tasks (1 CPU each, at most ``window`` in flight;
    None: twice the cluster's CPUs) when ``use_ray`` and there is more than one call, else in this process.
    A task that fails fails the step, and the tasks still running are cancelled."""
    if not use_ray or len(calls) <= 1:
        for args in calls:
            yield fn(*args)
        return
    import ray

    from pipeline.shuffle import ensure_ray

    ensure_ray()
    task = ray.remote(num_cpus=1)(fn)
    window = window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    running: deque = deque()
    todo = iter(calls)
    try:
        for args in todo:
            running.append(task.remote(*args))
            if len(running) >= window:
                yield ray.get(running.popleft())
        while running:
            yield ray.get(running.popleft())
    finally:
        for ref in running:
            ray.cancel(ref)


@dataclass
class Written:
    """What the output step hands the run: files' stats (writer by writer, file by file), counts, values."""

    outputs: list[dict]
    flow: Counter
    dists: dict[str, list] = field(default_factory=dict)
    shards: int = 0


def write_dataset(work: str, stage: str | None, units: list[str], dest: str, cfg: OutputConfig, per: int,
                  image_table_dir: str | None, use_ray: bool, dists: dict | None = None) -> Written:
    """Write the run's dataset (shards of ``per`` documents, in unit order) with every writer of ``cfg``,
    spread over tasks (module docstring). ``dists``: reservoirs (``extend``) per distribution name, fed in
    run order. Raises when the documents read differ from the footers' count."""
    counts = unit_counts(work, stage, units, use_ray)
    n = sum(c for _, c in counts)
    shards = max(1, -(-n // per))
    writers = writers_for(cfg)
    modes = {name: w.mode for name, w in zip(cfg.formats, writers)}
    flow: Counter = Counter()
    outputs: dict[str, list[dict]] = {name: [] for name in cfg.formats}
    plans = {name: w.planner() for name, w in zip(cfg.formats, writers) if w.mode == "spans"}
    spans: dict[str, list[tuple[int, int, int]]] = {name: [] for name in plans}
    calls = [(k, shards, pieces_of(counts, k * per, min(n, (k + 1) * per)), dest, cfg, image_table_dir)
             for k in range(shards)]
    for r in in_order(shard_task, calls, use_ray):
        flow.update(r["flow"])
        for key, values in r["dists"].items():
            if dists is not None and key in dists:
                dists[key].extend(values)
        for name, files in r["outputs"].items():
            outputs[name].extend(files)
        for name, sizes in r["sizes"].items():
            spans[name].extend(plans[name].add(sizes))
    if flow["document"] != n:
        raise RuntimeError(f"the units' footers count {n} documents but {flow['document']} were read")
    sequential = [(name, w) for name, w in zip(cfg.formats, writers) if modes[name] == "sequential"]
    if sequential:  # a writer of one's own that writes shard after shard: in the driver, as before
        parts = shard_tables(unit_tables(work, stage, units), per)
        written = write_with([w for _, w in sequential], parts, shards, dest, _images(image_table_dir))
        for name, w in sequential:
            outputs[name] = written[id(w)]
    calls = []
    for name, plan in plans.items():
        spans[name].extend(plan.finish())
        calls += [(name, i, pieces_of(counts, a, b), dest, cfg, image_table_dir, size)
                  for i, (a, b, size) in enumerate(spans[name])]
    for (name, *_), files in zip(calls, in_order(span_task, calls, use_ray)):
        outputs[name].extend(files)
    log.info("wrote %d documents in %d shard(s) over %d task(s)", n, shards, shards + len(calls))
    return Written([o for name in cfg.formats for o in outputs[name]], flow, shards=shards)
