"""``obelics run``: WARC inputs (any number of snapshots and shards) to one dataset, resumable.

One run is one dataset: every global pass (dedup, the image table) decides over all of its units,
wherever they were processed. Units run on Ray (``run.use_ray``, the default) or inline, and the
global passes on the matching :mod:`pipeline.shuffle` backend (``run.use_ray=false``: no Ray at all).

Layout of ``OUT``::

    run.json                      the plan (inputs, profile, stages); a rerun must match it
    work/<NN>-<ops>/<unit>.parquet + <unit>.stats.json    per-unit stage outputs and markers
    work/<NN>-<global op>/decision.json                   global decisions and their markers
    parquet/  webdataset/         the dataset shards (pipeline.writers)
    stats.json  report.html       the funnel (stats.json is written last: the run's marker)

A rerun skips every unit, decision and output whose marker exists, so after a kill it redoes only
what was in flight, and its output equals an uninterrupted run's (every step is deterministic).

A rerun with a superset of the inputs (the next snapshot, more shards) and the same profile and stages
*extends* the run: the per-unit results before the first global decision (extraction, text filters)
are kept, the decisions and everything after them are redone over all units, so the result equals a
fresh run over all inputs. Any other change of plan is refused (or discarded with ``--restart``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from obelics import storage
from obelics.config import Profile
from pipeline import stages  # noqa: F401  (registers the ops get_op looks up)
from pipeline.cpu import StageClock, op_clock
from pipeline.executor import ensure_ray, run_decision, run_unit_stage
from pipeline.loss import SystemicLoss, describe, error_drops, systemic
from pipeline.markers import is_done, read_json, write_json_atomic
from pipeline.ops import GlobalOp, UnitOp, get_op
from pipeline.profile import load_profile, resolved, validate
from pipeline.run_config import DEFAULT_STAGES, RunConfig  # noqa: F401  (RunConfig: re-exported)
from pipeline.sources import input_name

log = logging.getLogger("obelics.run")


@dataclass
class Plan:
    """Which ops run in which stage: unit ops fused between global decisions."""

    steps: list[tuple[str, object]]  # ("units", [UnitOp...]) or ("decide", GlobalOp)


def make_plan(stage_names: list[str]) -> Plan:
    steps: list[tuple[str, object]] = []
    current: list[UnitOp] = []
    for name in stage_names:
        op = get_op(name)
        if isinstance(op, UnitOp):
            current.append(op)
            continue
        assert isinstance(op, GlobalOp)
        if current:
            steps.append(("units", current))
            current = []
        steps.append(("decide", op))
        if op.apply is not None:
            current.append(UnitOp(f"{op.name}.apply", _applier(op), arrow=op.apply_arrow))
    if current:
        steps.append(("units", current))
    return Plan(steps)


def _applier(op: GlobalOp):
    def fn(docs, ctx):
        return op.apply(docs, ctx["decisions"][op.name], ctx)

    return fn


def _fused(ops: list[UnitOp]):
    """One function running ``ops`` in order on a unit: given (and returning) a list of documents, or a
    DOCUMENT_SCHEMA table (``accepts_table``: :func:`pipeline.executor._run_unit` then reads and writes the
    unit's Parquet as a table), converted only where the next op takes the other form (``UnitOp.arrow``)."""
    from pipeline.report.funnel import WordCounter, document_flow

    def fn(docs, ctx):
        stats: list[dict] = []
        words = ctx["word_counter"] = WordCounter()  # one for the stage's flows, its step ops' included
        for op in ops:
            took = op_clock(op.name, docs)  # a conversion is charged to the op that needs it
            docs, s = op.fn(docs if op.source else _as_form(docs, op.arrow), ctx)
            stats.append(took())
            stats.extend(s)
            if not any("flow" in x for x in s):  # documents, images and words left after the op (the
                last = next((x["stage"] for x in reversed(s) if "stage" in x), op.name)  # report's funnel)
                stats.append({"flow": document_flow(docs, last, words)})
        return docs, stats

    fn.accepts_table = True
    return fn


def _as_form(docs, arrow: bool):
    """``docs`` (a list of documents or a DOCUMENT_SCHEMA table) as a table when ``arrow``, else as a list."""
    from obelics.document import documents_to_table, table_to_documents

    if isinstance(docs, list):
        return documents_to_table(docs) if arrow else docs
    return docs if arrow else list(table_to_documents(docs))


RUN_OUTPUTS = ("run.json", "profile.yaml", "stats.json", "report.html", "work", "parquet", "webdataset")


def discard_run(out: str | Path) -> None:
    """Remove what ``run`` wrote in ``out`` (and nothing else)."""
    storage.remove(storage.join(out, "stats.json"))  # the run's marker first
    for name in RUN_OUTPUTS:
        storage.remove_tree(storage.join(out, name))


def _comparable(plan: dict) -> dict:
    """``plan`` without the dedup settings that change how the passes run, never what they decide
    (``filters.dedup.config.EXECUTION_ONLY``: partition sizes, the shuffle's fan-in): a rerun that changes
    only those (or a code default of theirs, or adds one) resumes the run."""
    from filters.dedup.config import EXECUTION_ONLY

    dedup = plan.get("profile_data", {}).get("dedup")
    if not isinstance(dedup, dict):
        return plan
    return {**plan, "profile_data": {**plan["profile_data"],
                                     "dedup": {k: v for k, v in dedup.items() if k not in EXECUTION_ONLY}}}


def _extends(old: dict, new: dict) -> bool:
    """Whether plan ``new`` extends plan ``old``: the same profile and stages, a strict superset of its inputs."""
    old, new = _comparable(old), _comparable(new)
    same = {k: v for k, v in old.items() if k != "inputs"} == {k: v for k, v in new.items() if k != "inputs"}
    return same and set(old.get("inputs", [])) < set(new["inputs"])


def _reusable_stages(plan: Plan) -> list[str]:
    """The stage folders of the unit stages before the plan's first global decision."""
    names = []
    for i, (kind, what) in enumerate(plan.steps):
        if kind != "units":
            break
        names.append(f"{i:02d}-" + "+".join(op.name for op in what))  # type: ignore[union-attr]
    return names


def discard_decisions(out: str | Path, plan: Plan) -> None:
    """Remove what depends on the set of units (the run's marker first, then every global decision, the
    stages after it and the dataset), keeping the per-unit stages before the first decision."""
    keep = set(_reusable_stages(plan))
    storage.remove(storage.join(out, "stats.json"))
    work = storage.join(out, "work")
    for name in storage.listdir(work):
        if name not in keep:
            storage.remove_tree(storage.join(work, name))
    for name in ("report.html", "parquet", "webdataset"):
        storage.remove_tree(storage.join(out, name))


def _writers_images(decision: dict | None) -> dict | None:
    """The image-table decision's folders the writers read: the table, and the join's per-unit rows (each shard
    task reads its units' rows instead of every part's footer)."""
    if not decision or not decision.get("table_dir"):
        return None
    return {k: decision[k] for k in ("table_dir", "unit_dir") if decision.get(k)}


def run(profile: str | Profile, out: str | Path, inputs: list[str], overrides: list[str] | None = None,
        workers: int | None = None, ray_address: str | None = None, restart: bool = False,
        restart_if_changed: bool = False) -> dict:
    """:func:`_run` holding ``OUT/.lock`` (one writer per folder; a killed writer's leftovers removed first)."""
    from pipeline.lock import run_lock

    with run_lock(out):
        return _run(profile, out, inputs, overrides, workers, ray_address, restart, restart_if_changed)


def _run(profile: str | Profile, out: str | Path, inputs: list[str], overrides: list[str] | None = None,
         workers: int | None = None, ray_address: str | None = None, restart: bool = False,
         restart_if_changed: bool = False) -> dict:
    """Run the pipeline over ``inputs`` (WARC paths or URLs) into ``out``; returns the final stats.

    ``restart`` discards a previous run in ``out`` first; otherwise a previous run with the same plan is
    resumed (or found complete), one whose inputs are a subset of ``inputs`` is extended (its per-unit
    work before the first global decision is kept), and one with another plan is refused, or discarded
    and started again with ``restart_if_changed`` (for small runs such as the embedded sample).
    """
    profile = load_profile(profile, overrides)
    typed = validate(profile)  # every section checked before anything is written
    cfg = typed.run
    if "optout" in cfg.stages:
        typed.optout.check_environment()  # a missing API key stops the run now, not after the downloads
    out = os.fspath(out)  # a local folder or an object-store prefix (obelics.storage)
    work = storage.join(out, "work")
    final_marker = storage.join(out, "stats.json")
    units = {input_name(i): i for i in inputs}
    if len(units) != len(inputs):
        raise ValueError("two inputs map to the same unit name; pass each WARC once")
    full = resolved(profile)  # every value the run uses, defaults included
    plan_record = {"profile": profile.name, "profile_data": {k: v for k, v in full.items() if k != "name"},
                   "inputs": list(inputs),
                   "stages": cfg.stages}
    plan_path = storage.join(out, "run.json")
    old = read_json(plan_path) if is_done(plan_path) else None
    changed = old is not None and _comparable(old) != _comparable(plan_record)
    plan = make_plan(cfg.stages)
    if old is not None and not changed and old != plan_record:  # only how the dedup passes run differs
        log.info("%s: the dedup execution settings changed; resuming with the new ones", out)
        write_json_atomic(plan_path, plan_record)
        storage.remove(storage.join(out, "profile.yaml"))  # rewritten below with the values this run uses
    if changed and not restart and _extends(old, plan_record):
        log.info("%s: extending the run from %d to %d inputs (global decisions are redone)", out,
                 len(old["inputs"]), len(inputs))
        discard_decisions(out, plan)  # before the new plan is recorded: a kill here leaves the old plan
        write_json_atomic(plan_path, plan_record)
    elif restart or (restart_if_changed and changed):
        if changed:
            log.info("%s holds a run with another plan: discarding it", out)
        discard_run(out)
    elif changed:
        raise ValueError(f"{out} holds a run with another plan (inputs, profile or stages differ); "
                         "(a superset of its inputs extends it); use a new --out folder, --restart to discard "
                         "that run, or --restart-if-changed")
    if not is_done(plan_path):
        write_json_atomic(plan_path, plan_record)
    saved = storage.join(out, "profile.yaml")  # the exact profile, defaults and overrides included (the card shows it)
    if not storage.exists(saved):
        storage.write_text_atomic(saved, yaml.safe_dump(full, sort_keys=False, allow_unicode=True))
    if is_done(final_marker):
        log.info("run in %s is complete (stats.json exists): nothing to do", out)
        return read_json(final_marker)

    t0 = time.monotonic()
    use_ray = cfg.use_ray
    warm = None
    with StageClock() as start:  # Ray's start (its processes' start-up included), before any stage
        if use_ray:
            ensure_ray(ray_address)
            warm = _warm_imports()
    ctx: dict = {"profile": profile, "out": out, "work": work, "decisions": {}, "sources": units,
                 "use_ray": use_ray}
    prev: str | None = None
    timings = []
    warned: set[str] = set()  # stages whose systemic loss was already logged
    from pipeline.finish import RunStats, finish_run

    run_stats = RunStats()  # every stage's stats, summed as each stage ends: markers are not read again
    for i, (kind, what) in enumerate(plan.steps):
        if kind == "units":
            ops: list[UnitOp] = what  # type: ignore[assignment]
            name = f"{i:02d}-" + "+".join(op.name for op in ops)
            sources = {u: (src if prev is None else None) for u, src in units.items()}
            if prev is None:  # the stage that reads the inputs (and notes where their image records are)
                ctx["source_stage_dir"] = storage.join(work, name)
            run_stats.begin_stage()
            with StageClock() as clock:
                summary = run_unit_stage(name, work, prev, sources, _fused(ops), ctx, use_ray=use_ray,
                                         concurrency=workers or cfg.workers, on_stats=run_stats.add)
            timings.append(dict(summary, cpu_seconds=round(clock.cpu_seconds, 3)))
            prev = name
            warned |= _check_loss(run_stats.last_stage(), cfg, out)
        else:
            op: GlobalOp = what  # type: ignore[no-redef]
            name = f"{i:02d}-{op.name}"
            with StageClock() as clock:
                ctx["decisions"][op.name] = run_decision(name, work, op.decide, prev, list(units), ctx)
            timings.append({"stage": name, "seconds": round(clock.seconds, 3),
                            "cpu_seconds": round(clock.cpu_seconds, 3)})
            decision = ctx["decisions"][op.name]
            if isinstance(decision, dict) and "stats" in decision:  # as its marker holds them
                run_stats.add(json.loads(json.dumps(decision["stats"], sort_keys=True, ensure_ascii=False)))
    from pipeline.report import write_run_report

    with StageClock() as clock:
        if warm is not None:  # (a wait only if the stages took less than the imports)
            warm.join()
        stats = finish_run(out, work, prev, sorted(units), run_stats, profile, cfg, timings, time.monotonic() - t0,
                           _writers_images(ctx["decisions"].get("image_table")))
    if "cpu" in stats:  # what runs once, outside the stages: Ray's start, then the dataset's writers
        stats["cpu"].update(start_seconds=round(start.seconds, 3), start_cpu_seconds=round(start.cpu_seconds, 3),
                            finish_seconds=round(clock.seconds, 3), finish_cpu_seconds=round(clock.cpu_seconds, 3))
        if warm is not None:  # the writers' and the report's imports, done in the driver during the stages
            stats["cpu"]["warm_imports_cpu_seconds"] = round(warm.cpu_seconds, 3)
    losses = record_errors(stats, cfg, warned)
    # the report last, once everything that adds to the stats has run (errors, losses: its warnings), and
    # before the completion marker
    with StageClock() as report_clock:
        write_run_report(stats, out, typed.output)
    if "cpu" in stats:  # in stats.json only: the report cannot show its own time
        stats["cpu"].update(report_seconds=round(report_clock.seconds, 3),
                            report_cpu_seconds=round(report_clock.cpu_seconds, 3))
    write_json_atomic(final_marker, stats)
    log.info("run complete in %.1fs: %s", time.monotonic() - t0, out)
    if losses and cfg.on_systemic_loss == "fail":
        raise SystemicLoss(loss_message(losses, out))
    return stats


def _warm_imports() -> threading.Thread:
    """Import the report's modules in a thread while the stages run on Ray (the driver mostly waits for its
    tasks then) instead of after the last stage, when nothing else runs: matplotlib and its pyplot, ~0.6 CPU s.
    (The writers need no slow import: the tars are written without ``webdataset``, which imports torch.) A
    failed import is left for the report to raise."""
    import importlib

    def work():
        c0 = time.thread_time()
        for name in ("matplotlib", "matplotlib.pyplot"):
            try:
                if name == "matplotlib.pyplot":  # the report's backend (pipeline.report.html), set before pyplot
                    importlib.import_module("matplotlib").use("Agg", force=False)
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the writer or the report raises it where it is used
                log.debug("warming the import of %s failed", name, exc_info=True)
        t.cpu_seconds = time.thread_time() - c0  # counted in the stage it overlapped (the first, usually)

    t = threading.Thread(target=work, name="obelics-warm-imports", daemon=True)
    t.cpu_seconds = 0.0
    t.start()
    return t


def loss_message(losses: list[dict], out: str) -> str:
    """The one-line error of a run stopped by a systemic loss."""
    return (describe(losses[0]) + (f" (and {len(losses) - 1} more)" if len(losses) > 1 else "")
            + f"; fix the cause (network, service, key), then rerun with --restart into {out}, or "
            "--set run.on_systemic_loss=warn to keep such a result")


def _check_loss(stage_stats: list[dict], cfg: RunConfig, out: str) -> set[str]:
    """Stop the run (``run.on_systemic_loss: fail``) or warn when the stage just run lost too much to errors;
    returns the stages warned about."""
    losses = systemic(error_drops(stage_stats, cfg.error_reasons), cfg.max_error_share, cfg.min_error_drops)
    if losses and cfg.on_systemic_loss == "fail":
        raise SystemicLoss(loss_message(losses, out))
    for loss in losses:
        log.warning("systemic loss: %s", describe(loss))
    return {loss["stage"] for loss in losses}


def record_errors(stats: dict, cfg: RunConfig, warned: set[str] = frozenset()) -> list[dict]:
    """Write the error drops of every stage (``errors``) and those over the limit (``systemic_loss``, with
    the policy) into the final ``stats``; returns the latter."""
    drops = error_drops(stats.get("stages") or [], cfg.error_reasons)
    losses = systemic(drops, cfg.max_error_share, cfg.min_error_drops)
    stats["errors"] = drops
    stats["systemic_loss"] = {"policy": cfg.on_systemic_loss, "max_error_share": cfg.max_error_share,
                              "min_error_drops": cfg.min_error_drops, "stages": losses}
    for loss in losses:
        if loss["stage"] not in warned:
            log.warning("systemic loss: %s", describe(loss))
    return losses
