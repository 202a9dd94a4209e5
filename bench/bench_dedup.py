"""Dedup at scale: every pass over N generated documents (the run's engine, on the local or the Ray
backend), docs/s and peak memory; MinHash signatures/s per core against datatrove's MinHash.

    .venv/bin/python -m bench.bench_dedup --docs 100000,1000000          # all passes, each size in a fresh process
    .venv/bin/python -m bench.bench_dedup --docs 1000000,10000000 --words 30 --backend local --minhash-docs 0
    bash bench/setup_datatrove_env.sh                                     # once: build/bench-venv with datatrove
    .venv/bin/python -m bench.bench_dedup --docs 100000 --minhash-docs 20000
    .venv/bin/python -m bench.bench_dedup --docs 1000000 --words 30 --backend local --minhash-docs 0 --rounds-fan-in 4
    .venv/bin/python -m bench.bench_dedup --plan                          # the shuffle plans of a snapshot and of 25
    .venv/bin/python -m bench.bench_dedup --driver-index                  # the driver's index, dry: 20,000 units, a snapshot
    .venv/bin/python -m bench.bench_dedup --driver-index 25               # ... and 25 snapshots (~2.5 M merge tasks)
    .venv/bin/python -m bench.bench_dedup --index-at 25                   # 25 snapshots' largest index, built for real

Documents are generated (seeded): ~4,000 domains, URLs re-crawled in several snapshots (URL
duplicates: about 43% of documents are older copies), images drawn from a Zipf pool (some seen thousands of times), per-domain boilerplate
paragraphs, copied image sets, and near-duplicate texts (a few words edited). They are written as
Parquet shards of 25,000 documents (the run's units) under ``build/bench-dedup/<N>[-w<words>]/`` and
read back by the tasks, so the driver never holds the corpus; each pass is decided over all units and
applied to each (``pipeline.dedup.dedup_units``: what a run does), its partitions and outputs under
``build/bench-dedup/<N>-spill/``, so nothing large goes through Ray's object store. ``--words`` sets the
body words per document (220 by default; small documents let 10 million fit a small machine). Peak memory is the peak sum of the proportional set size (PSS) of the driver and every
process it started (Ray's GCS, raylet, workers, object store pages), sampled every 0.5 s; the largest
processes at that sample and the driver's own peak are printed. Workers and driver run with
``MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=0`` and Arrow's system allocator, so freed memory goes back
to the OS between tasks. Partitions: at least ``dedup.num_partitions`` (``--partitions``), at most
``dedup.docs_per_partition`` documents each.

``--rounds-fan-in F`` runs each size twice, in fresh processes one after the other: as configured (one
round at these sizes) and with the multi-round shuffle forced (``dedup.shuffle_fan_in=F``,
``dedup.shuffle_single_round_max=1``); with the local backend it counts the partition files every task
opens (``pipeline.shuffle.open_ipc``). ``--plan`` prints, without running anything, the shuffle plans
(``pipeline.dedup.shuffle_plan``, what the passes follow) for a snapshot and for 25: map tasks from
``--plan-doc-bytes`` of Parquet a document read in blocks of ``READ_BLOCK_BYTES``, partitions from
``dedup.docs_per_partition``, the routing back to the units; against one round. ``--driver-index`` runs
those plans' merge rounds dry (merge tasks that write nothing and return the worst-case labels, file
operations skipped) and measures with tracemalloc what the driver holds: the shuffle index (flat arrays,
against the dict of lists it replaced) and the routing's per-unit maps. ``--index-at`` builds only the
largest index of a plan (the most record batches of one round, from the plans above), with the real
:class:`pipeline.rounds.IndexBuilder` from synthetic results (files of F consecutive labels each, as a merge
task's output holds its slot's finer slots; added in call order, as a merge round adds them), and measures
it in fresh processes: with tracemalloc (held and peak, numpy's buffers included) and without (RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.subrun import Periodic, run_measurement

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "build" / "bench-dedup"
BENCH_VENV = ROOT / "build" / "bench-venv"
SHARD_DOCS = 25_000
WORKER_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "0"}


# -- corpus ----------------------------------------------------------------------------------------
def generate(n: int, out: Path, seed: int = 0, words: int = 220) -> list[str]:
    """Write ``n`` documents as Parquet shards (cached by size); returns the shard paths.

    Every random draw of a shard is one vectorised numpy call and the bodies are joined by Arrow, so
    the per-document Python work is string formatting only (10 million documents in minutes, not hours).
    """
    import pyarrow.compute as pc

    out.mkdir(parents=True, exist_ok=True)
    done = out / "DONE"
    paths = [str(out / f"shard-{i:05d}.parquet") for i in range((n + SHARD_DOCS - 1) // SHARD_DOCS)]
    if done.exists() and done.read_text() == f"{n} v2":
        return paths
    from obelics.document import DOCUMENT_SCHEMA

    rng = np.random.default_rng(seed)
    vocab = pa.array([f"w{i}" for i in range(20_000)])
    zipf_p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf_p /= zipf_p.sum()
    cdf = np.cumsum(zipf_p)

    def draw_words(shape) -> np.ndarray:  # word indices, Zipf-distributed (inverse CDF: one searchsorted)
        return np.minimum(np.searchsorted(cdf, rng.random(shape)), len(cdf) - 1)

    def joined(idx: np.ndarray) -> list[str]:  # rows of word indices -> "w12 w3 ..." strings
        flat = vocab.take(pa.array(idx.ravel()))
        lists = pa.ListArray.from_arrays(pa.array(np.arange(0, idx.size + 1, idx.shape[1], dtype=np.int32)), flat)
        return pc.binary_join(lists, " ").to_pylist()

    n_domains = 4_000
    boiler = joined(draw_words((n_domains, 12)))
    crawls = ["CC-MAIN-2021-04", "CC-MAIN-2022-05", "CC-MAIN-2023-06"]
    dates = [f"{c[8:12]}-0{i + 1}-15T00:00:00Z" for i, c in enumerate(crawls)]
    stories = np.zeros((5000, words), dtype=np.int64)  # earlier bodies that near-duplicates copy
    n_stories = 0
    for i, path in enumerate(paths):
        m = min(SHARD_DOCS, n - i * SHARD_DOCS)
        k0 = i * SHARD_DOCS
        page = rng.integers(max(1, int(n * 0.8)), size=m)  # a URL is re-crawled with probability ~1/3
        dom = page % n_domains
        crawl = rng.integers(3, size=m)
        body = draw_words((m, words))
        r = rng.random(m)
        keep = np.flatnonzero((r >= 0.05) & (r < 0.10))[:5000 - n_stories]
        stories[n_stories:n_stories + len(keep)] = body[keep]
        n_stories += len(keep)
        near = np.flatnonzero(r < 0.05) if n_stories else np.array([], dtype=np.int64)
        if len(near):  # a near-duplicate of an earlier story, three words edited
            body[near] = stories[rng.integers(n_stories, size=len(near))]
            edits = rng.integers(0, words, size=(len(near), 3))
            body[near[:, None], edits] = draw_words((len(near), 3))
        bodies = joined(body)
        n_img = rng.integers(1, 4, size=m)
        img_ids = rng.zipf(1.3, size=(m, 3)) % 2_000_000
        copied = rng.integers(2000, size=m)
        warc_no = rng.integers(1000, size=m)
        rows = {k: [] for k in DOCUMENT_SCHEMA.names}
        for j in range(m):
            d = int(dom[j])
            if r[j] > 0.97:  # a copied article: same image set, different site
                imgs = [f"https://news.example/{copied[j]}.jpg"]
            else:
                imgs = [f"https://img{d % 50}.example/{x}.jpg" for x in img_ids[j, :n_img[j]]]
            url = f"https://site{d}.example/p{page[j]}"
            c = crawl[j]
            wf = f"crawl-data/{crawls[c]}/segments/x/warc/{warc_no[j]:05d}.warc.gz"
            rows["doc_id"].append(f"{k0 + j:012d}")
            rows["url"].append(url)
            rows["domain"].append(f"site{d}.example")
            rows["warc_filename"].append(wf)
            rows["warc_record_offset"].append(k0 + j)
            rows["warc_record_length"].append(1000)
            rows["capture_date"].append(dates[c])
            rows["images"].append([None, None] + imgs)
            # json.dumps of [None, None, {"src": url}, ...] and {"url": ..., "warc_filename": ...}, written out
            rows["metadata"].append("[null, null, " + ", ".join(f'{{"src": "{u}"}}' for u in imgs) + "]")
            rows["general_metadata"].append(f'{{"url": "{url}", "warc_filename": "{wf}"}}')
            rows["texts"].append([boiler[d] + "\n\n" + bodies[j], "Share this page"] + [None] * len(imgs))
        pq.write_table(pa.Table.from_pydict(rows, schema=DOCUMENT_SCHEMA), path)
    done.write_text(f"{n} v2")
    return paths


# -- memory sampling -------------------------------------------------------------------------------
class PeakMemory(Periodic):
    """Peak of the summed PSS (RSS where PSS is unavailable) of this process and all its descendants."""

    def __init__(self, interval: float = 0.5):
        import psutil

        super().__init__(interval)
        self.proc = psutil.Process()
        self.peak = 0
        self.at_peak: list[tuple[str, int]] = []  # (process, bytes) at the peak sample
        self.driver_peak = 0  # this process alone, over the whole run

    def _sample(self, detail: list | None = None) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                mi = p.memory_full_info()
                v = getattr(mi, "pss", mi.rss)
                total += v
                if detail is not None:
                    detail.append(((" ".join(p.cmdline()[:3]) or p.name())[-60:], v))
            except Exception:  # a process that exited between listing and reading
                pass
        return total

    def tick(self) -> None:
        detail: list = []
        v = self._sample(detail)
        if detail and detail[0][1] > self.driver_peak:
            self.driver_peak = detail[0][1]
        if v > self.peak:
            self.peak, self.at_peak = v, sorted(detail, key=lambda x: -x[1])[:8]


# -- one size, in this process ---------------------------------------------------------------------
def corpus_dir(n: int, words: int) -> Path:
    return DATA / (str(n) if words == 220 else f"{n}-w{words}")


def run_size(n: int, profile: str, cpus: int, partitions: int, object_store_mb: int, backend: str = "ray",
             words: int = 220, overrides: list[str] | None = None) -> dict:
    import pipeline.shuffle as sh
    from filters.dedup.config import dedup_config
    from pipeline.dedup import dedup_units, num_partitions, num_rows
    from pipeline.shuffle import LocalBackend, RayBackend

    opens = [0]  # partition files opened by the tasks (this process's: all of them with the local backend)
    real_open = sh.open_ipc

    def counting_open(path):
        opens[0] += 1
        return real_open(path)

    sh.open_ipc = counting_open

    t0 = time.perf_counter()
    paths = generate(n, corpus_dir(n, words), words=words)
    gen_s = time.perf_counter() - t0
    # by default the profile's partitions: at least dedup.num_partitions, at most docs_per_partition each
    cfg = dedup_config(profile, ([f"dedup.num_partitions={partitions}"] if partitions else []) + (overrides or []))
    partitions = num_partitions(paths, cfg)
    units = [Path(p).stem for p in paths]
    with PeakMemory() as mem:
        if backend == "ray":
            import ray

            # beyond the cap Ray spills objects to disk; the allocator settings make workers give freed
            # Arrow/heap memory back to the OS between tasks (otherwise idle workers keep their peak)
            ray.init(num_cpus=cpus, object_store_memory=object_store_mb * 2**20, include_dashboard=False,
                     log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
            ray.data.DataContext.get_current().enable_progress_bars = False
        engine = RayBackend() if backend == "ray" else LocalBackend()
        base = mem._sample()
        t1, c1 = time.perf_counter(), time.process_time()
        spill = DATA / f"{n}-spill"
        shutil.rmtree(spill, ignore_errors=True)
        last, _, stats = dedup_units(Path(paths[0]).parent, units, cfg, spill, ctx={"backend": engine})
        seconds, cpu_s = time.perf_counter() - t1, time.process_time() - c1
    n_out = num_rows([str(last / f"{u}.parquet") for u in units])
    shutil.rmtree(spill, ignore_errors=True)
    if backend == "ray":
        ray.shutdown()
    else:
        cpus = 1
    return {"docs": n, "docs_out": n_out, "seconds": round(seconds, 1), "docs_per_s": round(n / seconds),
            "cpu_s": round(cpu_s, 1), "cpu_us_per_doc": round(1e6 * cpu_s / n, 1),
            "backend": backend, "words": words, "corpus_mb": round(sum(os.path.getsize(p) for p in paths) / 2**20),
            "peak_mem_mb": round(mem.peak / 2**20), "mem_after_ray_init_mb": round(base / 2**20),
            "generate_s": round(gen_s, 1), "cpus": cpus, "partitions": partitions, "profile": profile,
            "object_store_mb": object_store_mb,
            "top_processes_at_peak_mb": [(name, round(v / 2**20)) for name, v in mem.at_peak],
            "driver_peak_mb": round(mem.driver_peak / 2**20),
            "passes": {s.stage: s.as_dict() for s in stats}, "overrides": overrides or [],
            "partition_file_opens": opens[0] if backend == "local" else None}


def print_plans(doc_bytes: int, profile: str, overrides: list[str]) -> None:
    """The shuffle plans of every pass for a snapshot and for 25 (see the module docstring)."""
    import math

    from filters.dedup.config import dedup_config
    from pipeline.dedup import READ_BLOCK_BYTES, partitions_for, shuffle_plan

    cfg = dedup_config(profile, overrides)
    one = dedup_config(profile, overrides + ["dedup.shuffle_fan_in=1000000000",
                                             "dedup.shuffle_single_round_max=1000000000000000000"])
    print(f"shuffle plans: fan-in {cfg.shuffle_fan_in}, one round up to {cfg.shuffle_single_round_max:,} "
          f"(map tasks x partitions), {cfg.docs_per_partition:,} documents a partition, {doc_bytes:,} bytes of "
          f"Parquet a document, map tasks of {READ_BLOCK_BYTES >> 20} MB")
    for name, docs, units in (("one snapshot", 820_000_000, 90_000), ("25 snapshots", 20_500_000_000, 2_250_000)):
        m = math.ceil(docs * doc_bytes / READ_BLOCK_BYTES)
        p = partitions_for(docs, cfg)
        print(f"{name}: {docs:,} documents, {units:,} units, {m:,} map tasks, {p:,} partitions")
        for what, mm, pp in (("keys -> partitions", m, p), ("decision -> units", p, units)):
            plan, single = shuffle_plan(mm, pp, cfg), shuffle_plan(mm, pp, one)
            print(f"  {what} ({mm:,} x {pp:,}): {'multi-round' if plan.multi else 'one round'}, "
                  f"{len(plan.rounds)} merge rounds, {sum(r.tasks for r in plan.rounds):,} merge tasks, "
                  f"opens {plan.opens:,} (one round: {single.opens:,}, {single.opens / plan.opens:,.0f}x), "
                  f"record batches written {plan.batches:,} (one round: {single.batches:,}), "
                  f"most files one task opens {plan.max_task_opens:,} (one round: {single.max_task_opens:,})")
            for i, r in enumerate(plan.rounds, 1):
                print(f"    round {i}: {r.slots:,} slots x {r.files_per_slot:,} files, {r.tasks:,} tasks, "
                      f"{r.opens:,} opens, {r.batches:,} batches")


def driver_index(docs: int, units: int, doc_bytes: int, profile: str, overrides: list[str]) -> dict:
    """The driver's bookkeeping of one pass's two shuffles (keys -> partitions, decision -> units) at a
    plan's size, dry: a backend whose merge task writes nothing and returns the labels the real one would in
    the worst case (every file holds every slot it may hold), file operations skipped; measured with
    tracemalloc (numpy's buffers included). Also the per-unit maps the routing keeps (paths, unit of
    each path, position of each path)."""
    import math
    import tracemalloc
    from unittest import mock

    from filters.dedup.config import dedup_config
    from pipeline import rounds
    from pipeline import shuffle as sh
    from pipeline.dedup import READ_BLOCK_BYTES, partitions_for, shuffle_plan

    cfg = dedup_config(profile, overrides)
    m, p = math.ceil(docs * doc_bytes / READ_BLOCK_BYTES), partitions_for(docs, cfg)
    work = "/work-folder/decision/.url-work-0123abcd/shuffle"

    class Dry:
        name = "local"
        calls = 0

        def imap(self, fn, calls):
            for _inputs, sub, out_path, _ in calls:
                self.calls += 1
                yield out_path, sub[:-1]

    built: list[int] = []
    real_build = rounds.IndexBuilder.build

    def build(self, base=None):
        idx = real_build(self, base)
        built.append(idx.entries)
        return idx

    out = {"docs": docs, "units": units, "map_tasks": m, "partitions": p}
    with mock.patch.object(sh, "remove_file", lambda path: None), \
            mock.patch.object(sh, "make_dirs", lambda path: None), \
            mock.patch.object(rounds.IndexBuilder, "build", build):
        for what, mm, pp in (("keys", m, p), ("route", p, units)):
            plan = shuffle_plan(mm, pp, cfg)
            built.clear()
            dry = Dry()
            t0 = time.process_time()
            tracemalloc.start()
            b = rounds.IndexBuilder()
            labels = plan.top[:-1] if plan.multi else np.arange(pp, dtype=np.int64)
            for i in range(mm):
                b.add(i, f"{work}/map-{i:05d}.arrow", labels)
            idx = b.build()
            if plan.multi:
                idx = rounds.merge_rounds(dry, idx, plan, work)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            cpu = time.process_time() - t0
            biggest = max(built)
            out[what] = {"map_files": mm, "partitions": pp, "merge_rounds": len(plan.rounds),
                         "merge_tasks": dry.calls, "largest_index_entries": biggest,
                         "peak_mb": round(peak / 2**20, 1), "peak_bytes_per_entry": round(peak / biggest, 1),
                         "cpu_s": round(cpu, 1), "final_entries": idx.entries}
    tracemalloc.start()
    prev = "/work-folder/work/03-text_filters"
    names = [f"CC-MAIN-2023-06-segment-{i // 1000:05d}-warc-{i % 1000:05d}" for i in range(units)]
    paths = [f"{prev}/{u}.parquet" for u in names]
    unit_of = dict(zip(paths, names))
    position = {x: i for i, x in enumerate(paths)}
    out["per_unit_maps_bytes_per_unit"] = round(tracemalloc.get_traced_memory()[0] / units)
    tracemalloc.stop()
    del names, paths, unit_of, position
    return out


def largest_index(plan_name: str, doc_bytes: int, profile: str, overrides: list[str]) -> tuple[int, int, int]:
    """(record batches, labels, batches of the index before it) of the largest index a plan's shuffles build:
    the map side's batches or a merge round's, whichever is most, the partitions of that shuffle (the labels
    it ends with), and the index the driver holds while that one's results come in (the round before's)."""
    import math

    from filters.dedup.config import dedup_config
    from pipeline.dedup import READ_BLOCK_BYTES, partitions_for, shuffle_plan

    cfg = dedup_config(profile, overrides)
    _, docs, units = INDEX_PLANS[plan_name]
    m, p = math.ceil(docs * doc_bytes / READ_BLOCK_BYTES), partitions_for(docs, cfg)
    best = (0, 0, 0)
    for mm, pp in ((m, p), (p, units)):
        plan = shuffle_plan(mm, pp, cfg)
        sizes = [plan.map_batches] + [r.batches for r in plan.rounds]
        best = max([best] + [(b, pp, sizes[i - 1] if i else 0) for i, b in enumerate(sizes)])
    return best


def index_at(entries: int, labels: int, fan_in: int, trace: bool, before: int = 0) -> dict:
    """An index of ``entries`` entries over ``labels`` labels built by the real :class:`IndexBuilder` (files of
    ``fan_in`` consecutive labels, added in call order); what it holds and its peak (tracemalloc with ``trace``,
    else the process's RSS, in MB). ``before``: an index of that many entries is built first and held while
    the results come in, then dropped before the build, as :func:`pipeline.rounds.merge_rounds` does; the
    peak then is the round's (``round_peak_mb``)."""
    import tracemalloc

    from bench.subrun import memory_mb as rss
    from pipeline.rounds import IndexBuilder

    files = entries // fan_in
    work = "/work-folder/decision/.url-work-0123abcd/route-merge/round-2"

    def results(n_files: int):
        for i in range(n_files):
            lo = (i * 7919) % max(1, labels - fan_in)
            yield i, f"{work}/{lo:09d}-{i % 64:06d}.arrow", np.arange(lo, lo + fan_in, dtype=np.int64)

    rss0 = rss()
    if trace:
        tracemalloc.start()
    prev = None
    if before:
        pb = IndexBuilder()
        for r in results(before // fan_in):
            pb.add(*r)
        prev = pb.build()
        del pb
        if trace:
            tracemalloc.reset_peak()
    c0 = time.process_time()
    b = IndexBuilder()
    for r in results(files):
        b.add(*r)
    c1 = time.process_time()
    out = {"entries": files * fan_in, "labels": labels, "files": files, "add_cpu_s": round(c1 - c0, 1)}
    if trace:
        out["builder_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
        if before:
            out["round_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.reset_peak()
    else:
        out["rss_after_adds_mb"] = round(rss()[0] - rss0[0])
    del prev  # (merge_rounds drops the round's index before the next one is built)
    idx = b.build()
    del b
    out["build_cpu_s"] = round(time.process_time() - c1, 1)
    out["index_nbytes_mb"] = round(idx.nbytes() / 2**20, 1)
    if trace:
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.update(held_mb=round(held / 2**20, 1), build_peak_mb=round(peak / 2**20, 1))
    else:
        now, hwm = rss()
        out.update(rss_before_mb=round(rss0[0]), rss_held_mb=round(now - rss0[0]), rss_peak_mb=round(hwm - rss0[0]))
    assert idx.entries == files * fan_in
    return out


def print_index_at(plans: list[str], doc_bytes: int, profile: str, overrides: list[str]) -> int:
    from filters.dedup.config import dedup_config

    fan_in = dedup_config(profile, overrides).shuffle_fan_in
    for name in plans:
        entries, labels, before = largest_index(name, doc_bytes, profile, overrides)
        r = {}
        for mode in ("trace", "rss", "round"):
            x = run_measurement([sys.executable, "-m", "bench.bench_dedup", "--index-one",
                                 f"{entries},{labels},{fan_in},{mode},{before if mode == 'round' else 0}"])
            if x is None:
                return 1
            if mode == "round":  # the peak of the whole round: results coming in beside the round before's, or the build
                r["round_peak_mb"] = max(x["round_peak_mb"], x["build_peak_mb"])
            else:
                r.update(x)
        n = r["entries"]
        print(f"{INDEX_PLANS[name][0]}: largest index {n:,} entries over {r['labels']:,} labels in {r['files']:,} files "
              f"(fan-in {fan_in}): tracemalloc: builder {r['builder_mb']:,} MB before the build, peak while built "
              f"{r['build_peak_mb']:,} MB ({r['build_peak_mb'] * 2**20 / n:.1f} B an entry), held "
              f"{r['held_mb']:,} MB ({r['held_mb'] * 2**20 / n:.1f} B; arrays {r['index_nbytes_mb']:,} MB); RSS above "
              f"the {r['rss_before_mb']} MB after imports: {r['rss_after_adds_mb']:,} MB after the adds, peak "
              f"{r['rss_peak_mb']:,} MB ({r['rss_peak_mb'] * 2**20 / n:.1f} B an entry), held {r['rss_held_mb']:,} MB; "
              f"CPU {r['add_cpu_s']} s adding (tracemalloc on), {r['build_cpu_s']} s building; the merge round "
              f"(the round before's index of {before:,} entries held while its results come in, then this one "
              f"built): peak {r['round_peak_mb']:,} MB (tracemalloc)")
    return 0


def compare_dict_index(entries_files: int, slots: int) -> dict:
    """The index as it was (``{label: [(path, [batch, ...])]}``) against :class:`pipeline.rounds.Index`,
    for ``entries_files`` map files each holding ``slots`` slots (tracemalloc)."""
    import tracemalloc
    from collections import defaultdict

    from pipeline.rounds import IndexBuilder

    labels = np.arange(slots, dtype=np.int64)
    paths = [f"/work-folder/decision/.url-work-0123abcd/shuffle/map-{i:05d}.arrow" for i in range(entries_files)]
    tracemalloc.start()
    locs: dict = defaultdict(list)
    for path in paths:
        for k in labels.tolist():
            locs[k].append((path, [k]))
    old = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del locs
    tracemalloc.start()
    b = IndexBuilder()
    for i, path in enumerate(paths):
        b.add(i, path, labels)
    idx = b.build()
    del b
    new_now, new_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = entries_files * slots
    return {"entries": n, "dict_bytes_per_entry": round(old / n, 1), "index_bytes_per_entry": round(new_now / n, 1),
            "index_peak_bytes_per_entry": round(new_peak / n, 1), "index_entries": idx.entries}


INDEX_PLANS = {"20000": ("20,000 units", 20_000 * 9_111, 20_000), "snapshot": ("one snapshot", 820_000_000, 90_000),
               "25": ("25 snapshots", 20_500_000_000, 2_250_000)}  # 9,111 documents a unit: 820 M / 90,000


def print_driver_index(doc_bytes: int, profile: str, overrides: list[str], plans: list[str]) -> None:
    c = compare_dict_index(12_219, 64)
    print(f"index of {c['entries']:,} entries (a snapshot's map side: 12,219 files x 64 slots): dict of lists "
          f"{c['dict_bytes_per_entry']} bytes an entry, flat arrays {c['index_bytes_per_entry']} "
          f"(peak while built {c['index_peak_bytes_per_entry']})")
    for name, docs, units in (INDEX_PLANS[x] for x in plans):
        r = driver_index(docs, units, doc_bytes, profile, overrides)
        print(f"{name}: {docs:,} documents, {units:,} units; per-unit maps of the routing "
              f"{r['per_unit_maps_bytes_per_unit']} bytes a unit ({r['per_unit_maps_bytes_per_unit'] * units / 2**20:,.0f} MB)")
        for what in ("keys", "route"):
            x = r[what]
            print(f"  {what} ({x['map_files']:,} x {x['partitions']:,}): {x['merge_rounds']} merge rounds, "
                  f"{x['merge_tasks']:,} merge tasks; largest index {x['largest_index_entries']:,} entries; "
                  f"driver peak {x['peak_mb']:,} MB ({x['peak_bytes_per_entry']} bytes an entry of the largest "
                  f"index); {x['cpu_s']} CPU-s")


# -- MinHash signatures: ours vs datatrove -----------------------------------------------------------
DATATROVE_SCRIPT = r"""
import json, sys, time
import pyarrow.parquet as pq
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
path, bands, rows, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
texts = ["\n\n".join(t for t in row if t) for row in pq.read_table(path, columns=["texts"])["texts"].to_pylist()][:n]
sig = MinhashDedupSignature(output_folder="/tmp/unused-dt", config=MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows))
sig.get_signature(sig.get_shingles(texts[0]))
t = time.perf_counter()
for x in texts:
    sig.get_signature(sig.get_shingles(x))
print(json.dumps({"docs": len(texts), "seconds": time.perf_counter() - t}))
"""


def minhash_speed(n: int, bands: int, rows: int) -> dict:
    from filters.dedup.minhash import MinHasher, document_text

    path = generate(max(n, SHARD_DOCS), DATA / str(max(n, SHARD_DOCS)))[0]
    texts = [document_text(t) for t in pq.read_table(path, columns=["texts"])["texts"].to_pylist()][:n]
    h = MinHasher(5, bands, rows)
    h.text_signatures(texts[:200])
    t = time.perf_counter()
    for i in range(0, len(texts), 1000):
        h.text_signatures(texts[i:i + 1000])
    ours = len(texts) / (time.perf_counter() - t)
    res = {"docs": len(texts), "hashes": bands * rows, "ours_sig_per_s_core": round(ours)}
    py = BENCH_VENV / "bin" / "python"
    if not py.exists():
        res["datatrove"] = f"not measured: run bash bench/setup_datatrove_env.sh to create {BENCH_VENV}"
        return res
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(DATATROVE_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([str(py), f.name, path, str(bands), str(rows), str(len(texts))], capture_output=True,
                         text=True, env=env)
    os.unlink(f.name)
    if out.returncode != 0:
        res["datatrove"] = "failed: " + out.stderr[-500:]
        return res
    dt = json.loads(out.stdout.strip().splitlines()[-1])
    res["datatrove_sig_per_s_core"] = round(dt["docs"] / dt["seconds"])
    res["speedup_vs_datatrove"] = round(ours / (dt["docs"] / dt["seconds"]), 2)
    return res


# -- one large near-duplicate component: the memory of the task that holds it ----------------------
COMPONENT_CHUNK = 20_000  # documents hashed at once while making a component


def component_files(n: int, folder: Path, words: int = 220, seed: int = 0, K: int = 16) -> tuple[dict, dict]:
    """The files of one component as the MinHash decision's tasks get them: ``n`` copies of one template of
    ``words`` Zipf words with three words edited each (spread over ``n // 10`` units and the three crawls of
    :func:`generate`), their band rows (:func:`pipeline.dedup.minhash_band_rows`, a chunk of documents at a
    time), the candidate edges of those rows (:func:`filters.dedup.minhash.bucket_edges` ranked by
    :func:`recency_rank`, as :func:`pipeline.dedup.minhash_partition_edges` does, on integer documents so
    that millions fit) taken as confirmed (three edits in 220 words: Jaccard ~0.97), written as Arrow IPC
    in K record batches a file (what each of the K tasks before writes for one partition):
    the greedy task's labelled nodes and edges, and the partitions of ``K`` that hold the component's star
    centre (its smallest hash, with a star row to every node) and its hub (the node with the most edges):
    their star rows, nodes and both-way edges (the label task's input; a step's, first and last).
    Returns the paths and counts."""
    import pyarrow.compute as pc

    from filters.dedup.common import hash64
    from filters.dedup.config import dedup_config
    from filters.dedup.minhash import bucket_edges, recency_rank
    from filters.dedup.recency import recency_column
    from pipeline.components import EDGE_SCHEMA
    from pipeline.dedup import CAND_SCHEMA, LABELLED_SCHEMA, NODE_SCHEMA, minhash_band_rows

    cfg = dedup_config("default")
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 20_001) ** 1.05
    cdf = np.cumsum(p / p.sum())
    template = np.minimum(np.searchsorted(cdf, rng.random(words)), len(cdf) - 1)
    to = rng.integers(0, 20_000, (n, 3))  # drawn before the positions, as ``body[..., positions] = values`` did
    at = rng.integers(0, words, (n, 3))
    crawls = ["CC-MAIN-2021-04", "CC-MAIN-2022-05", "CC-MAIN-2023-06"]
    crawl = rng.integers(3, size=n)
    vocab = pa.array([f"w{i}" for i in range(20_000)])
    keys, members, recs = [], [], []
    for lo in range(0, n, COMPONENT_CHUNK):
        m = min(COMPONENT_CHUNK, n - lo)
        body = np.tile(template, (m, 1))
        body[np.arange(m)[:, None], at[lo:lo + m]] = to[lo:lo + m]
        texts = pc.binary_join(pa.ListArray.from_arrays(pa.array(np.arange(0, body.size + 1, words, dtype=np.int32)),
                                                        vocab.take(pa.array(body.ravel()))), " ").to_pylist()
        idx = range(lo, lo + m)
        t = pa.table({"doc_id": [f"{i:012d}" for i in idx], "texts": [[x] for x in texts],
                      "warc_filename": [f"crawl-data/{crawls[crawl[i]]}/segments/x/warc/{i % 1000:05d}.warc.gz"
                                        for i in idx],
                      "capture_date": [f"{crawls[crawl[i]][8:12]}-0{crawl[i] + 1}-15T00:00:00Z" for i in idx]})
        rows = minhash_band_rows(t, cfg)
        keys.append(rows["key"].to_numpy())
        members.append(pc.cast(rows["doc_id"], pa.int64()).to_numpy().astype(np.int32))
        recs.append(recency_column(t, cfg.recency))
    keys, members = np.concatenate(keys), np.concatenate(members)
    band_rows = len(keys)
    rec = pa.concat_arrays(recs)
    doc_ids = pa.array([f"{i:012d}" for i in range(n)])
    prio = recency_rank(rec, doc_ids)
    a, b = [], []
    for part in range(8):  # the band keys in parts (a bucket is in one part): less memory at once
        sel = keys % np.uint64(8) == np.uint64(part)
        x, y = bucket_edges(keys[sel], members[sel], prio[members[sel]])
        a.append(x.astype(np.int32))
        b.append(y.astype(np.int32))
        del sel, x, y
    del keys, members, prio
    code = np.unique(np.concatenate(a).astype(np.int64) * n + np.concatenate(b))
    a, b = (code // n).astype(np.int32), (code % n).astype(np.int32)
    del code
    present = np.zeros(n, bool)  # the documents on an edge, renumbered (np.unique's inverse, in O(n))
    present[a] = present[b] = True
    on_edge = np.flatnonzero(present)
    renum = (np.cumsum(present) - 1).astype(np.int32)
    a, b = renum[a], renum[b]
    del present, renum
    ids = doc_ids.take(pa.array(on_edge))
    h = hash64(ids.to_pylist())
    folder.mkdir(parents=True, exist_ok=True)
    fid = pa.array(rng.integers(0, max(1, n // 10), len(h)), pa.int64())
    labelled = pa.table({"label": pa.array(np.zeros(len(h), np.uint64)), "h": pa.array(h, pa.uint64()),
                         "doc_id": ids, "rec": rec.take(pa.array(on_edge)), "_file": fid}, schema=LABELLED_SCHEMA)
    x, y = np.minimum(h[a], h[b]), np.maximum(h[a], h[b])
    edges = pa.table({"x": pa.array(x, pa.uint64()), "y": pa.array(y, pa.uint64())}, schema=CAND_SCHEMA)
    centre = h.min()  # the star forest: every node linked to the smallest
    deg = np.bincount(np.concatenate([a, b]), minlength=len(h))
    hub = h[np.argmax(deg)]  # the node with the most edges (the most recent copy heads most buckets)
    leaves = h[h != centre]
    tables = [("nodes", labelled), ("edges", edges)]
    for where, node in (("centre", centre), ("hub", hub)):  # the partitions of K holding them
        q = np.uint64(int(node % np.uint64(K)))
        own = leaves[leaves % np.uint64(K) == q]
        centre_rows = leaves if centre % np.uint64(K) == q else np.zeros(0, np.uint64)
        stars = pa.table({"u": pa.array(np.concatenate([np.full(len(centre_rows), centre), own]), pa.uint64()),
                          "v": pa.array(np.concatenate([centre_rows, np.full(len(own), centre)]), pa.uint64())},
                         schema=EDGE_SCHEMA)
        fx, fy = x % np.uint64(K) == q, y % np.uint64(K) == q  # the rows (u, v) both ways with u in q
        tables += [(f"stars_{where}", stars),
                   (f"nodes_{where}", labelled.filter(pa.array(h % np.uint64(K) == q)).select(NODE_SCHEMA.names)),
                   (f"edges_{where}", pa.table({"u": pa.array(np.concatenate([x[fx], y[fy]]), pa.uint64()),
                                                "v": pa.array(np.concatenate([y[fx], x[fy]]), pa.uint64())},
                                               schema=EDGE_SCHEMA))]
        del fx, fy
    paths = {}
    for name, tab in tables:  # K batches: one from each of the K tasks before (label, confirm, step)
        path = str(folder / f"{name}-{n}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, tab.schema) as w:
            w.write_table(tab, max_chunksize=max(1, -(-tab.num_rows // K)))
        paths[name] = path
    mb = sum(os.path.getsize(paths[k]) for k in ("nodes", "edges")) / 2**20
    return paths, {"docs": n, "nodes": len(h), "edges": len(a), "band_rows": band_rows, "file_mb": round(mb, 1),
                   "K": K, "hub_edges": int(deg.max()), "centre_is_hub": bool(hub == centre)}


COMPONENT_TASKS = ("greedy-in-memory", "greedy", "label-centre", "label-hub", "step-centre", "step-hub")


def component_one(paths: dict, task: str, tracemalloc_on: bool, spill_mb: int = 0) -> dict:
    """One task over one component's files, in this fresh process: its CPU seconds and its memory (RSS
    growth and peak; or tracemalloc's peak, numpy and Arrow buffers that Python allocates included).
    ``greedy-in-memory``: ``pipeline.greedy.greedy_partition_in_memory``; ``greedy``: ``pipeline.dedup._greedy_task``;
    ``label-centre``, ``label-hub``: ``pipeline.dedup._label_task`` of the partition holding the star's
    centre or the hub; ``step-centre``: a Large-Star step (``pipeline.components._step_task``) on the star
    rows of the centre's partition (the last step's input), ``step-hub``: one on the edges of the hub's
    partition (the first step's input). ``spill_mb``: the greedy's ``SPILL_BYTES`` (0: its default)."""
    import hashlib
    import tracemalloc

    from bench.subrun import memory_mb
    from pipeline import components, dedup, greedy

    if spill_mb:
        greedy.SPILL_BYTES = spill_mb << 20

    def locs(path):
        with pa.OSFile(path, "rb") as f:
            return [(path, list(range(pa.ipc.open_file(f).num_record_batches)))]

    rss0 = memory_mb()[0]
    if tracemalloc_on:
        tracemalloc.start()
    c0 = time.process_time()
    res: dict = {}

    def measured() -> None:  # before anything else runs (the check below reads the output back)
        res["cpu_s"] = round(time.process_time() - c0, 2)
        res["rss_before_mb"] = round(rss0)
        if tracemalloc_on:
            res["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            tracemalloc.stop()
        else:
            rss, peak = memory_mb()
            res["peak_rss_mb"], res["peak_growth_mb"] = round(peak), round(peak - rss0)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.arrow")
        if task in ("greedy-in-memory", "greedy"):
            fn = greedy.greedy_partition_in_memory if task == "greedy-in-memory" else dedup._greedy_task
            _, path, parts, counts = fn(locs(paths["nodes"]), locs(paths["edges"]), 0, out, None)
            measured()
            res["removed"] = counts
            if path:  # the removed rows, to check both tasks wrote the same
                with pa.OSFile(path, "rb") as f:
                    t = pa.ipc.open_file(f).read_all()
                res["rows_sha256"] = hashlib.sha256(repr((t.to_pydict(), list(parts))).encode()).hexdigest()[:16]
            return res
        elif task.startswith("label-"):
            where = task.split("-")[1]
            _, counts = dedup._label_task(locs(paths[f"stars_{where}"]), locs(paths[f"nodes_{where}"]),
                                          locs(paths[f"edges_{where}"]), 16, out, os.path.join(tmp, "edges.arrow"), None)
            res["counts"] = counts
        else:
            rows = paths["stars_centre"] if task == "step-centre" else paths["edges_hub"]
            _, counts = components._step_task(locs(rows), True, 16, out, None)
            res["counts"] = counts
        measured()
    return res


def print_component(sizes: list[int], words: int, tasks: list[str], old_max: int, traced: bool,
                    keep: bool = False, spill_mb: int = 0) -> int:
    """Per size: make the component's files, then each task in fresh processes (RSS, and tracemalloc when
    ``traced``); the in-memory greedy only up to ``old_max`` nodes (it needs ~2 KB a node)."""
    folder = DATA / "component"
    for n in sizes:
        t0 = time.process_time()
        made = folder / f"counts-{n}-w{words}.json"  # kept with --component-keep: the next run reuses the files
        if made.exists():
            paths, counts = json.loads(made.read_text())
        else:
            paths, counts = component_files(n, folder, words)
        print(f"{n:,} copies of one template ({words} words, 3 edited): {counts['nodes']:,} nodes, "
              f"{counts['edges']:,} candidate edges ({counts['band_rows']:,} band rows), files "
              f"{counts['file_mb']} MB, the hub's edges {counts['hub_edges']:,} (centre is hub: "
              f"{counts['centre_is_hub']}); made in {time.process_time() - t0:.1f} CPU-s", flush=True)
        for task in tasks:
            if task == "greedy-in-memory" and n > old_max:
                print(f"    {task}: skipped (over --component-old-max {old_max:,})", flush=True)
                continue
            for mode in ("rss", "tracemalloc") if traced else ("rss",):
                code = (f"import json; from bench.bench_dedup import component_one; "
                        f"print('RESULT ' + json.dumps(component_one({paths!r}, {task!r}, {mode == 'tracemalloc'}, {spill_mb})))")
                r = run_measurement([sys.executable, "-c", code], env={**os.environ, **WORKER_ENV})
                if r is None:
                    return 1
                per = (f"{1024 * r['peak_growth_mb'] / counts['nodes']:.3f} KB RSS growth" if mode == "rss" else
                       f"{1024 * r['tracemalloc_peak_mb'] / counts['nodes']:.3f} KB traced")
                print(f"    {task} ({mode}): {r}; per node: {per}", flush=True)
        if keep:
            made.write_text(json.dumps([paths, counts]))
        else:
            for path in paths.values():
                os.unlink(path)
            made.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", default="100000", help="comma-separated corpus sizes (each in a fresh process)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--partitions", type=int, default=0,
                    help="minimum hash partitions per pass (0: the profile's; more when docs_per_partition is exceeded)")
    ap.add_argument("--object-store-mb", type=int, default=1024, help="Ray object store cap (spills beyond)")
    ap.add_argument("--minhash-docs", type=int, default=20_000, help="documents for the signature comparison (0: skip)")
    ap.add_argument("--backend", choices=["ray", "local"], default="ray",
                    help="where the passes' tasks run: Ray tasks, or this process (no Ray; one core)")
    ap.add_argument("--words", type=int, default=220, help="body words per generated document")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a profile override (repeatable)")
    ap.add_argument("--rounds-fan-in", type=int, default=0,
                    help="also run each size with the multi-round shuffle forced at this fan-in")
    ap.add_argument("--plan", action="store_true", help="print the shuffle plans of a snapshot and of 25, then exit")
    ap.add_argument("--driver-index", nargs="?", const="20000,snapshot", metavar="PLANS",
                    help="the driver's shuffle index, dry (tracemalloc), at these plans (of 20000, snapshot, 25), "
                         "then exit")
    ap.add_argument("--index-at", nargs="?", const="25", metavar="PLANS",
                    help="the largest index of these plans (of 20000, snapshot, 25) built for real, then exit")
    ap.add_argument("--index-one", help=argparse.SUPPRESS)
    ap.add_argument("--plan-doc-bytes", type=int, default=1000, help="Parquet bytes a document, for --plan")
    ap.add_argument("--component", metavar="SIZES",
                    help="one near-duplicate component of these sizes (comma-separated copies of one template): "
                         "the greedy task's memory, then exit")
    ap.add_argument("--component-tasks", default=",".join(COMPONENT_TASKS),
                    help=f"with --component: which tasks ({', '.join(COMPONENT_TASKS)})")
    ap.add_argument("--component-old-max", type=int, default=1_000_000,
                    help="with --component: run the in-memory greedy only up to this many copies (~2 KB a node)")
    ap.add_argument("--component-traced", action="store_true",
                    help="with --component: each task also under tracemalloc (a second fresh process)")
    ap.add_argument("--component-keep", action="store_true",
                    help="with --component: keep the component's files (a later run reuses them)")
    ap.add_argument("--component-spill-mb", type=int, default=0,
                    help="with --component: the bounded greedy's spill budget in MB (0: pipeline.greedy.SPILL_BYTES)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.component:
        return print_component([int(x) for x in args.component.split(",")], args.words,
                               args.component_tasks.split(","), args.component_old_max, args.component_traced,
                               args.component_keep, args.component_spill_mb)
    if args.plan:
        print_plans(args.plan_doc_bytes, args.profile, args.set)
        return 0
    if args.index_one:
        e, u, f, mode, before = args.index_one.split(",")
        print("RESULT " + json.dumps(index_at(int(e), int(u), int(f), mode != "rss", int(before))))
        return 0
    if args.index_at:
        return print_index_at(args.index_at.split(","), args.plan_doc_bytes, args.profile, args.set)
    if args.driver_index:
        print_driver_index(args.plan_doc_bytes, args.profile, args.set, args.driver_index.split(","))
        return 0
    if args.one:
        print("RESULT " + json.dumps(run_size(args.one, args.profile, args.cpus, args.partitions,
                                              args.object_store_mb, args.backend, args.words, args.set)))
        return 0
    results = []
    variants = [args.set] + ([args.set + [f"dedup.shuffle_fan_in={args.rounds_fan_in}",
                                          "dedup.shuffle_single_round_max=1"]] if args.rounds_fan_in else [])
    for n, over in [(int(x), v) for x in args.docs.split(",") for v in variants]:
        cmd = [sys.executable, "-m", "bench.bench_dedup", "--one", str(n), "--profile", args.profile,
               "--cpus", str(args.cpus), "--partitions", str(args.partitions),
               "--object-store-mb", str(args.object_store_mb), "--backend", args.backend, "--words", str(args.words)]
        cmd += [x for o in over for x in ("--set", o)]
        # the driver runs with the workers' allocator settings (glibc reads them at start-up)
        r = run_measurement(cmd, env={**os.environ, **WORKER_ENV})
        if r is None:
            return 1
        results.append(r)
        print(f"  [{' '.join(r['overrides']) or 'as configured'}] partition files opened: {r['partition_file_opens']}")
        print(f"{r['docs']:>9,} docs -> {r['docs_out']:,} kept: {r['seconds']} s, {r['docs_per_s']:,} docs/s, "
              f"{r.get('cpu_s')} CPU-s of this process ({r.get('cpu_us_per_doc')} CPU-us/doc), "
              f"peak memory {r['peak_mem_mb']:,} MB (before the passes {r['mem_after_ray_init_mb']:,} MB), "
              f"{r['cpus']} CPUs ({r['backend']} backend), {r['partitions']} partitions, "
              f"object store cap {r['object_store_mb']} MB, profile {r['profile']}, {r['words']} body words, "
              f"corpus {r['corpus_mb']:,} MB Parquet")
        print(f"    largest processes at the peak (MB): {r['top_processes_at_peak_mb']}; "
              f"driver's own peak {r['driver_peak_mb']} MB")
        for stage, s in r["passes"].items():
            print(f"    {stage}: in {s['in']} out {s['out']} dropped {s['dropped']}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"memory growth {a['docs']:,} -> {b['docs']:,} docs ({b['docs'] / a['docs']:.0f}x): "
              f"{a['peak_mem_mb']:,} -> {b['peak_mem_mb']:,} MB ({b['peak_mem_mb'] / a['peak_mem_mb']:.2f}x); "
              f"time {a['seconds']} -> {b['seconds']} s ({b['seconds'] / a['seconds']:.2f}x); "
              f"CPU {a['cpu_s']} -> {b['cpu_s']} s ({b['cpu_s'] / a['cpu_s']:.2f}x)")
    if args.minhash_docs:
        from filters.dedup.config import dedup_config

        mh = dedup_config(args.profile).minhash
        r = minhash_speed(args.minhash_docs, mh.bands, mh.rows)
        print(f"MinHash signatures, one core, {r['docs']:,} docs, {r['hashes']} hashes: ours {r['ours_sig_per_s_core']:,}/s; "
              + (f"datatrove {r['datatrove_sig_per_s_core']:,}/s; ours/datatrove {r['speedup_vs_datatrove']}x"
                 if "datatrove_sig_per_s_core" in r else str(r.get("datatrove"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
