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
leaves no file that reads as done; Ray retries it.

A rerun of a killed run skips what was finished (:class:`Resume`): before the step, the driver writes the
step's plan (a digest of the units with their footers' row counts and row-group sizes, the shard size, the
output settings and folder) to ``WORK/.output/plan.json``, and every task, once its files are renamed,
writes a receipt beside it (``shard-KKKKK.json``: the task's result; ``<format>-IIIII.json``: a tar's stats)
as its last object. A rerun with the same plan lists that folder once and hands each task whether its
receipt is there: a task with one reads it back, checks its plan and (for the built-in writers) that its
files are there, and returns it without reading a document; so the counts, distributions and tar sizes the
driver takes are those of one uninterrupted run. Another plan removes the old receipts first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from obelics import storage
from obelics.document import DOCUMENT_SCHEMA
from pipeline.writers.base import Writer, write_with, writers_for
from pipeline.writers.config import OutputConfig
from pipeline.writers.units import _clean_general_metadata, shard_tables, unit_tables

log = logging.getLogger("obelics.run")


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one unit's final Parquet."""

    path: str
    start: int
    stop: int


FOOTERS_PER_TASK = 256  # units whose footers one task reads (a run of thousands of units: requests spread)


def _footprint(md) -> str:
    """What a Parquet footer says of its file's content, short: rows, footer size and each row group's rows and
    sizes (a unit written again, e.g. by an extended run, differs)."""
    groups = [(g.num_rows, g.total_byte_size, sum(g.column(c).total_compressed_size for c in range(g.num_columns)))
              for g in (md.row_group(i) for i in range(md.num_row_groups))]
    return hashlib.sha1(json.dumps([md.num_rows, md.serialized_size, groups]).encode()).hexdigest()[:16]


def _footers(work: str, stage: str | None, units: list[str]) -> list[tuple[str, int, str]]:
    if stage is None:
        return []
    out = []
    for u in units:  # opened without an ``exists`` first: a request less a unit on an object store
        path = storage.join(work, stage, f"{u}.parquet")
        try:
            f = storage.parquet_file(path)
        except FileNotFoundError:  # a unit without final documents' file
            continue
        try:
            out.append((path, f.metadata.num_rows, _footprint(f.metadata)))
        finally:
            f.close()
    return out


def unit_footers(work: str, stage: str | None, units: list[str], use_ray: bool = False) -> list[tuple[str, int, str]]:
    """``(path, documents, footprint)`` of every unit's final Parquet, in unit order (footers only), read by
    tasks of ``FOOTERS_PER_TASK`` units: the driver makes no request per unit (on an object store each is a
    round trip)."""
    calls = [(work, stage, units[i:i + FOOTERS_PER_TASK]) for i in range(0, len(units), FOOTERS_PER_TASK)]
    return [c for footers in in_order(_footers, calls, use_ray) for c in footers]


def unit_counts(work: str, stage: str | None, units: list[str], use_ray: bool = False) -> list[tuple[str, int]]:
    """``(path, documents)`` of every unit's final Parquet, in unit order (:func:`unit_footers`)."""
    return [(path, n) for path, n, _ in unit_footers(work, stage, units, use_ray)]


RESUME_DIR = ".output"  # WORK/.output/: the output step's plan and its tasks' receipts


@dataclass(frozen=True)
class Resume:
    """Where a task finds and leaves its receipt: ``folder`` (``WORK/.output``) and the step's ``plan`` digest."""

    folder: str
    plan: str

    def path(self, name: str) -> str:
        return storage.join(self.folder, f"{name}.json")

    def load(self, name: str, files: Callable[[dict], list[str | None]]) -> dict | None:
        """Receipt ``name`` if it is this plan's and every file it names that ``files`` can locate exists."""
        try:
            got = json.loads(storage.read_bytes(self.path(name)))
        except FileNotFoundError:
            return None
        if got.get("plan") != self.plan:
            return None
        if not all(storage.exists(f) for f in files(got) if f is not None):
            return None
        return got

    def save(self, name: str, data: dict) -> None:
        """The receipt, written last (after the task's files are renamed): compact JSON, atomically."""
        storage.write_text_atomic(self.path(name), json.dumps({"plan": self.plan, **data}, separators=(",", ":")))


def shard_receipt(k: int) -> str:
    """Shard ``k``'s receipt name."""
    return f"shard-{k:05d}"


def receipt_name(fmt: str, index: int) -> str:
    """A ``"spans"`` file's receipt name: its format (a plugin's ``module:Class`` made a file name) and index."""
    return f"{re.sub(r'[^A-Za-z0-9_]+', '_', fmt)}-{index:05d}"


def start_resume(work: str, footers: list[tuple[str, int, str]], per: int, dest: str, cfg: OutputConfig,
                 image_table: str | dict | None) -> tuple[Resume, set[str]]:
    """The step's :class:`Resume` and the receipts already there (one listing): the plan's digest is written to
    ``WORK/.output/plan.json`` before any task runs; another plan's receipts are removed first."""
    folder = storage.join(work, RESUME_DIR)
    plan = hashlib.sha256(json.dumps({"version": 1, "units": footers, "per": per, "dest": dest,
                                      "output": asdict(cfg), "image_table_dir": image_table},
                                     sort_keys=True).encode()).hexdigest()
    marker = storage.join(folder, "plan.json")
    try:
        same = json.loads(storage.read_bytes(marker)).get("plan") == plan
    except FileNotFoundError:
        same = False
    if not same:
        storage.remove_tree(folder)
        storage.write_json_atomic(marker, {"plan": plan, "units": len(footers), "documents": sum(n for _, n, _ in footers),
                                           "shard_docs": per})
        return Resume(folder, plan), set()
    return Resume(folder, plan), {n[:-5] for n in storage.listdir(folder) if n.endswith(".json")} - {"plan"}


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


def _images(images: str | dict | None, pieces: list[Piece] | None = None):
    """The image rows a task's documents need: those of its pieces' units (:func:`pipeline.images.join.images_for`)."""
    from pipeline.images.join import images_for

    return images_for(images, None if pieces is None else [p.path for p in pieces])


def _filled(part: pa.Table, images, writers: list[Writer]) -> pa.Table:
    if images is not None and any(w.needs_image_bytes for w in writers):
        from pipeline.images.merge import fill_image_bytes

        return fill_image_bytes(part, images)
    return part


def _located(dest: str, cfg: OutputConfig, outputs: dict[str, list[dict]]) -> list[str | None]:
    """Where each file of ``outputs`` (stats by format) is, for the writers that say (:meth:`Writer.location`)."""
    writers = dict(zip(cfg.formats, writers_for(cfg)))
    return [writers[name].location(dest, st) for name, files in outputs.items() for st in files]


def shard_task(k: int, shards: int, pieces: list[Piece], dest: str, cfg: OutputConfig,
               image_table: str | dict | None, resume: Resume | None = None, receipt: bool = False) -> dict:
    """Shard ``k`` of the run (in a task): its ``"shards"`` writers' files written, and what the driver needs:
    ``flow`` counts, ``dists`` (each document's value, in order), ``outputs`` and ``sizes`` by format.
    ``receipt``: ``resume`` holds this shard's receipt from an earlier try, returned as it is when valid."""
    from pipeline.report.funnel import document_distributions, flow_counts

    rname = shard_receipt(k)
    if receipt and resume is not None:
        got = resume.load(rname, lambda r: _located(dest, cfg, r["result"]["outputs"]))
        if got is not None and got["result"]["k"] == k:
            return {**got["result"], "reused": True}
    part = read_pieces(pieces)
    rows = part.select(["texts", "images"]).to_pylist()
    result = {"k": k, "flow": dict(flow_counts(rows)), "dists": document_distributions(rows),
              "outputs": {}, "sizes": {}}
    del rows
    writers = writers_for(cfg)
    images = _images(image_table, pieces)
    spans = [(name, w) for name, w in zip(cfg.formats, writers) if w.mode == "spans"]
    for name, w in spans:  # before the bytes are filled: sizes come from the image table's lengths
        result["sizes"][name] = w.measure(part, images)
    per_shard = [(name, w) for name, w in zip(cfg.formats, writers) if w.mode == "shards"]
    if per_shard:
        filled = _filled(part, images, [w for _, w in per_shard])
        for fmt, w in per_shard:
            result["outputs"][fmt] = w.write_shard(dest, filled, k, shards)
    if resume is not None:
        resume.save(rname, {"result": result})
    return result


def span_task(name: str, index: int, pieces: list[Piece], dest: str, cfg: OutputConfig,
              image_table: str | dict | None, size: int, resume: Resume | None = None, receipt: bool = False
              ) -> list[dict]:
    """File ``index`` of the ``"spans"`` writer ``name`` (in a task); returns its stats. ``receipt``: as for
    :func:`shard_task` (valid only for the same rows and size)."""
    w = dict(zip(cfg.formats, writers_for(cfg)))[name]
    rname = receipt_name(name, index)
    span = {"pieces": [[p.path, p.start, p.stop] for p in pieces], "size": size}  # as JSON gives it back
    if receipt and resume is not None:
        got = resume.load(rname, lambda r: [w.location(dest, st) for st in r["files"]])
        if got is not None and got["span"] == span:
            return got["files"]
    if hasattr(w, "write_span_rows"):  # rows made once: filled in place, not a table built and read back
        rows = read_pieces(pieces).to_pylist()
        images = _images(image_table, pieces)
        if images is not None and w.needs_image_bytes:
            from pipeline.images.merge import fill_rows

            fill_rows(rows, images)
        files = w.write_span_rows(dest, rows, index, size)
    else:
        files = w.write_span(dest, _filled(read_pieces(pieces), _images(image_table, pieces), [w]), index, size)
    if resume is not None:
        resume.save(rname, {"span": span, "files": files})
    return files


def in_order(fn: Callable, calls: list[tuple], use_ray: bool, window: int | None = None) -> Iterator:
    """``fn(*args)`` of every call, results in call order: Ray tasks (1 CPU each, at most ``window`` in flight;
    None: twice the cluster's CPUs) when ``use_ray``, even for one call (the driver reads no unit), else in this
    process. A task that fails fails the step, and the tasks still running are cancelled."""
    if not use_ray or not calls:
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
                  image_table: str | dict | None, use_ray: bool, dists: dict | None = None) -> Written:
    """Write the run's dataset (shards of ``per`` documents, in unit order) with every writer of ``cfg``,
    spread over tasks (module docstring). ``dists``: reservoirs (``extend``) per distribution name, fed in
    run order. Raises when the documents read differ from the footers' count."""
    footers = unit_footers(work, stage, units, use_ray)
    counts = [(path, c) for path, c, _ in footers]
    n = sum(c for _, c in counts)
    shards = max(1, -(-n // per))
    resume, receipts = start_resume(work, footers, per, dest, cfg, image_table)
    writers = writers_for(cfg)
    modes = {name: w.mode for name, w in zip(cfg.formats, writers)}
    flow: Counter = Counter()
    outputs: dict[str, list[dict]] = {name: [] for name in cfg.formats}
    plans = {name: w.planner() for name, w in zip(cfg.formats, writers) if w.mode == "spans"}
    spans: dict[str, list[tuple[int, int, int]]] = {name: [] for name in plans}
    calls = [(k, shards, pieces_of(counts, k * per, min(n, (k + 1) * per)), dest, cfg, image_table, resume,
              shard_receipt(k) in receipts) for k in range(shards)]
    reused = 0
    for r in in_order(shard_task, calls, use_ray):
        reused += bool(r.get("reused"))
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
        written = write_with([w for _, w in sequential], parts, shards, dest, _images(image_table))
        for name, w in sequential:
            outputs[name] = written[id(w)]
    calls = []
    for name, plan in plans.items():
        spans[name].extend(plan.finish())
        calls += [(name, i, pieces_of(counts, a, b), dest, cfg, image_table, size, resume,
                   receipt_name(name, i) in receipts) for i, (a, b, size) in enumerate(spans[name])]
    for (name, *_), files in zip(calls, in_order(span_task, calls, use_ray)):
        outputs[name].extend(files)
    log.info("wrote %d documents in %d shard(s) over %d task(s)%s", n, shards, shards + len(calls),
             f" ({reused} shard(s) found done by an earlier try)" if reused else "")
    return Written([o for name in cfg.formats for o in outputs[name]], flow, shards=shards)
