"""Running stages on Ray: per-unit stages in parallel (a Ray task per unit), global passes as decide-then-apply.

The unit of resumable work is one *unit*: one input WARC file. A per-unit stage reads the unit's
Parquet from the previous stage, applies a pure function from ``filters``/``obelics``, and writes the
unit's Parquet plus ``<unit>.stats.json`` (the completion marker, written last and atomically). A rerun
skips units whose marker exists, so a killed run loses at most the units in flight.

A global pass first *decides* over all units (what to remove: duplicate doc ids, too-frequent image
URLs, repeated paragraphs per domain) and writes the decision with its marker; then it *applies* the
decision unit by unit like a per-unit stage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obelics import storage
from obelics.document import DOCUMENT_SCHEMA, WebDocument, table_to_documents
from obelics.parquet import write_document_table, write_documents
from pipeline.cpu import sum_ops
from pipeline.markers import clean_temporaries, is_done, read_json, write_json_atomic
from pipeline.ops import UnitFn
from pipeline.progress import StageProgress
from pipeline.shuffle import ensure_ray

log = logging.getLogger("obelics.run")


def unit_paths(stage_dir: str | Path, unit: str) -> tuple[str, str]:
    return storage.join(stage_dir, f"{unit}.parquet"), storage.join(stage_dir, f"{unit}.stats.json")


def read_unit(stage_dir: str | Path, unit: str) -> list[WebDocument]:
    return list(table_to_documents(read_unit_table(stage_dir, unit)))


def read_unit_table(stage_dir: str | Path, unit: str):
    """A unit's documents in ``stage_dir`` as a DOCUMENT_SCHEMA table."""
    return storage.read_parquet(unit_paths(stage_dir, unit)[0])


@dataclass
class UnitResult:
    unit: str
    docs_in: int
    docs_out: int
    seconds: float
    stats: list[dict]


def _run_unit(stage: str, stage_dir: str, prev_dir: str | None, unit: str, source: str | None,
              fn: UnitFn | tuple[UnitFn, dict], context: dict | None = None) -> dict:
    """Process one unit (in a Ray worker or inline); writes outputs then the marker (with the unit's
    wall seconds and the CPU seconds of the process that ran it, :mod:`pipeline.cpu`). ``fn`` may be
    the pair ``(fn, context)`` (one object shared by a stage's Ray tasks). A ``fn`` marked ``accepts_table``
    (:func:`pipeline.run._fused`) is given the unit's table and may return one; any other a list of documents."""
    if context is None:
        fn, context = fn  # type: ignore[misc]
    t0, c0 = time.monotonic(), time.process_time()
    out_path, marker = unit_paths(stage_dir, unit)
    if prev_dir is None:
        docs_in: list[WebDocument] | str = source  # the first stage reads its source itself
        n_in = 0
    elif getattr(fn, "accepts_table", False):
        docs_in = read_unit_table(prev_dir, unit)
        n_in = docs_in.num_rows
    else:
        docs_in = read_unit(prev_dir, unit)
        n_in = len(docs_in)
    docs_out, stats = fn(docs_in, dict(context, unit=unit, source=source, stage_dir=stage_dir))
    if isinstance(docs_out, list):
        n_out = write_documents(out_path, docs_out, DOCUMENT_SCHEMA)
    else:  # a table (a stage whose last op is UnitOp.arrow)
        n_out = write_document_table(out_path, docs_out, DOCUMENT_SCHEMA)
    if prev_dir is None:
        n_in = next((s["read"].get("html_records", 0) for s in stats if "read" in s), n_out)
    ops = [s["op_cpu"] for s in stats if "op_cpu" in s]  # the fused ops' own CPU (pipeline.cpu.op_clock)
    stats = [s for s in stats if "op_cpu" not in s]
    seconds, cpu = time.monotonic() - t0, time.process_time() - c0
    write_json_atomic(marker, {"unit": unit, "stage": stage, "docs_in": n_in, "docs_out": n_out,
                               "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 4), "ops": ops,
                               "stats": stats})
    # the value the marker holds, so a resumed run sums exactly what a fresh one summed
    return {"unit": unit, "docs_in": n_in, "docs_out": n_out, "seconds": seconds,
            "cpu_seconds": round(cpu, 4), "ops": ops,
            "stats_json": json.dumps(stats, sort_keys=True, ensure_ascii=False)}  # as the marker holds them


def done_units(stage_dir: str, units) -> set[str]:
    """The units whose marker (``<unit>.stats.json``, the last file a unit writes) is in ``stage_dir``: one
    listing of the folder, not one existence check a unit (on an object store 20,000 units were 20,000
    HEAD requests one after the other per stage; a listing is one request a 1,000 names)."""
    names = set(storage.listdir(stage_dir))
    return {u for u in units if storage.basename(unit_paths(stage_dir, u)[1]) in names}


def run_unit_stage(stage: str, work: str | Path, prev: str | None, units: dict[str, str | None], fn: UnitFn,
                   context: dict, use_ray: bool = True, concurrency: int | None = None,
                   num_cpus: float = 1.0, on_stats: Callable[[list[dict]], None] | None = None) -> dict:
    """Run ``fn`` over every unit not yet done; returns the stage's progress summary, with
    ``unit_cpu_seconds``: the units' own CPU seconds, and ``ops``: their fused ops' own CPU seconds and
    inputs (:func:`pipeline.cpu.sum_ops`), those of units done before read from their markers.

    ``on_stats`` receives each unit's stats (as its marker holds them) in unit order: a unit run now
    from its task's result, a unit done before from its marker, read once (its CPU seconds with it).
    """
    sdir = storage.join(work, stage)
    storage.makedirs(sdir)
    clean_temporaries(sdir)
    done = done_units(sdir, units)
    pending = [u for u in sorted(units) if u not in done]
    unit_cpu: dict[str, float] = {}
    unit_ops: dict[str, list] = {}
    reads = done_markers(sdir, sorted(done), with_stats=on_stats is not None, use_ray=use_ray)
    ordered = _InUnitOrder(sorted(units), done, reads, unit_cpu, unit_ops, on_stats)
    progress = StageProgress(stage, len(units), already_done=len(done))
    if not pending:
        log.info("[%s] all %d units already done", stage, len(units))
    prev_dir = storage.join(work, prev) if prev else None
    if use_ray and len(pending) > 1:
        for r in _ray_units(stage, sdir, prev_dir, pending, units, fn, context, num_cpus, concurrency):
            progress.update(r["unit"], r["docs_in"], r["docs_out"], r["seconds"])
            ordered.finished(r)
    else:
        for u in pending:
            r = _run_unit(stage, sdir, prev_dir, u, units[u], fn, context)
            progress.update(u, r["docs_in"], r["docs_out"], r["seconds"])
            ordered.finished(r)
    ordered.drain()
    return dict(progress.summary(), unit_cpu_seconds=_sum_cpu(unit_cpu),
                ops=sum_ops([unit_ops[u] for u in sorted(unit_ops)]))


def _ray_units(stage: str, sdir: str, prev_dir: str | None, pending: list[str], units: dict[str, str | None],
               fn: UnitFn, context: dict, num_cpus: float, concurrency: int | None) -> Iterator[dict]:
    """:func:`_run_unit` of every pending unit as a Ray task (``num_cpus`` each, at most ``concurrency`` at
    once; None: as many as the cluster's CPUs allow), results as they finish.

    Plain Ray tasks, not Ray Data: a stage's input is a list of unit names, so Ray Data's streaming
    executor brought nothing but its cost: its first dataset of a run starts two actor processes (~3 CPU s
    on the 2-core bench machine), every dataset ~0.1 s of planning, and its scheduling loop polls at
    10 Hz in the driver while units run (``python -m bench.bench_pipeline``, BENCHMARKS.md issue 17).
    """
    import ray

    ensure_ray()
    task = ray.remote(num_cpus=num_cpus)(_run_unit)
    shared = ray.put((fn, context))  # the stage's function and context go to the object store once
    limit = concurrency or len(pending)
    todo, running = list(pending), []
    try:
        while todo or running:
            while todo and len(running) < limit:
                u = todo.pop(0)
                running.append(task.remote(stage, sdir, prev_dir, u, units[u], shared))
            done, running = ray.wait(running, num_returns=1)
            yield ray.get(done[0])
    finally:  # a unit failed (or the caller stopped): the others are not waited for
        for ref in running:
            ray.cancel(ref)


MARKERS_PER_TASK = 256  # done units whose markers one task reads on a resume


def _read_markers(sdir: str, units: list[str], with_stats: bool) -> list[tuple[float, list, list]]:
    """(CPU seconds, ops, stats) of each unit's marker, in order (stats empty unless ``with_stats``)."""
    out = []
    for u in units:
        m = read_json(unit_paths(sdir, u)[1])
        out.append((float(m.get("cpu_seconds") or 0.0), m.get("ops") or [],
                    (m.get("stats") or []) if with_stats else []))
    return out


def done_markers(sdir: str, done: list[str], with_stats: bool, use_ray: bool) -> Iterator[tuple[float, list, list]]:
    """:func:`_read_markers` of the units ``done`` (sorted) before, yielded one unit at a time in their
    order, read by tasks of ``MARKERS_PER_TASK`` units when the run uses Ray: a resumed run's driver makes no
    request per unit (on an object store a marker read was a HEAD and a GET, one after the other, per unit
    per stage). A generator: the tasks start when the first unit's turn comes, a window at a time."""
    if not done:
        return
    from pipeline.shuffle import get_backend

    calls = ((sdir, done[i:i + MARKERS_PER_TASK], with_stats) for i in range(0, len(done), MARKERS_PER_TASK))
    for batch in get_backend(use_ray and len(done) > 1).imap(_read_markers, calls):
        yield from batch


class _InUnitOrder:
    """Hands each unit's stats on in unit order while units finish in any order: a result that comes
    early waits (its stats as JSON text) for the units before it; a unit done in an earlier run takes the
    next of ``reads`` (:func:`done_markers`, in the done units' order) when its turn comes. Fills
    ``unit_cpu`` and ``unit_ops``."""

    def __init__(self, units: list[str], done: set[str], reads: Iterator[tuple[float, list, list]],
                 unit_cpu: dict[str, float], unit_ops: dict[str, list], sink: Callable[[list[dict]], None] | None):
        self.units, self.done, self.reads, self.sink = units, done, reads, sink
        self.unit_cpu, self.unit_ops = unit_cpu, unit_ops
        self.waiting: dict[str, dict] = {}
        self.next = 0

    def finished(self, result: dict) -> None:
        """A unit's result from :func:`_run_unit`."""
        self.waiting[result["unit"]] = {k: result[k] for k in ("cpu_seconds", "ops", "stats_json")}
        self.drain()

    def drain(self) -> None:
        while self.next < len(self.units):
            u = self.units[self.next]
            if u in self.done:
                cpu, ops, stats = next(self.reads)
            elif u in self.waiting:
                r = self.waiting.pop(u)
                cpu, ops = r["cpu_seconds"], r["ops"]
                stats = json.loads(r["stats_json"]) if self.sink else []
            else:
                return
            self.unit_cpu[u], self.unit_ops[u] = cpu, ops
            if self.sink:
                self.sink(stats)
            self.next += 1


def _sum_cpu(unit_cpu: dict[str, float]) -> float:
    """The units' CPU seconds summed in unit order (the same float whatever order the units finished in)."""
    return round(sum(unit_cpu[u] for u in sorted(unit_cpu)), 3)


def run_decision(stage: str, work: str | Path, decide: Callable[[str, list[str], dict], Any], prev: str,
                 units: list[str], context: dict) -> Any:
    """Run a global pass's decision once (skipped when its marker exists); returns the decision."""
    ddir = storage.join(work, stage)
    marker = storage.join(ddir, "decision.json")
    if is_done(marker):
        log.info("[%s] decision already made", stage)
        return read_json(marker)["decision"]
    storage.makedirs(ddir)
    t0 = time.monotonic()
    decision = decide(storage.join(work, prev), sorted(units), dict(context, decision_dir=ddir))
    write_json_atomic(marker, {"stage": stage, "seconds": round(time.monotonic() - t0, 3), "decision": decision})
    log.info("[%s] decision made in %.1fs", stage, time.monotonic() - t0)
    return decision


def collect_unit_stats(work: str | Path, stages: list[str], units: list[str]) -> Iterator[dict]:
    """Every unit's stage stats, in stage then unit order, one marker read at a time (a generator: the
    driver never holds every unit's stats at once)."""
    units = sorted(units)
    for stage in stages:
        sdir = storage.join(work, stage)
        for u in units:
            marker = unit_paths(sdir, u)[1]
            if is_done(marker):
                yield from read_json(marker)["stats"]
        dmarker = storage.join(sdir, "decision.json")
        if is_done(dmarker):
            d = read_json(dmarker)
            if isinstance(d.get("decision"), dict) and "stats" in d["decision"]:
                yield from d["decision"]["stats"]
