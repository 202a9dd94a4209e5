"""The image-table decision's pHash clustering at scale: driver memory and CPU per image, before (every URL and
hash collected in the driver, :func:`filters.dedup.phash.phash_clusters` there) and after (clustered by tasks,
:func:`pipeline.images.phash_tasks.phash_canonical_index`), on synthetic hashes (no decoding: the hashes are fed
to the clustering step directly).

    nice -n 10 .venv/bin/python -m bench.bench_phash --images 100000,1000000

Each (size, mode) runs in a fresh process:

- ``before-driver``: the driver collects the (url, hash) lists of every call (as the old ``_phash_canonical``
  gathered its hash tasks' results) and runs ``phash_clusters``; tracemalloc peak (numpy's buffers included),
  the mapping it held, and CPU seconds. The JSON file and the join's canonical rows it then wrote are not
  counted (the before figure is a lower bound).
- ``after-driver``: the tasks run in a process pool (2 workers), so the driver's tracemalloc peak is the
  driver's part only: the calls, the file indexes and the counts (the calls are (part, row groups) tuples in a
  run; here (seed, first image, count) tuples of the same number).
- ``after-cpu`` / ``before-cpu``: the same without tracemalloc and with every task in the driver's process
  (local backend), so the process time is the whole clustering's CPU (hashing excluded: ~1.4-2.3 CPU ms an
  image, BENCHMARKS.md issue 17).

``--blank`` instead measures one huge component: every image has the same hash (a blank image under as many
distinct URLs), hashed by calls of 512; mode ``tasks``: the clustering with its tasks in a pool of 2 worker
processes, each task's peak RSS read from ``/proc`` (VmHWM, reset before each task through ``clear_refs``),
reported as the largest by task function (``task_peak_mb``; ``task_growth_mb``: over the RSS the task started
at, after the worker handed freed memory back), with the driver's own peak RSS (``maxrss_mb``):

    nice -n 10 .venv/bin/python -m bench.bench_phash --blank --images 1000000 --modes tasks

Synthetic images: 30% are in groups of 3 near copies (1-2 bits flipped from the group's hash), the rest have
random hashes; 1 in 20 hashes is None (undecodable); URLs ~45 characters. Calls of 512 images (two 256-image
row groups), partitions as the run sizes them for that many rows (``dedup.docs_per_partition``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

CALL = 512


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64s."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def synthetic(seed: int, first: int, n: int, total: int) -> tuple[list, list]:
    """(urls, hashes) of images ``first .. first + n`` of ``total``."""
    j = np.arange(first, first + n, dtype=np.uint64)
    grouped = j < np.uint64(int(total * 0.3))
    h = np.where(grouped, _mix(j // np.uint64(3) + np.uint64(seed << 40)), _mix(j + np.uint64((seed + 7) << 40)))
    r = _mix(j ^ np.uint64(0xABCDEF))
    flip = (np.uint64(1) << (r % np.uint64(64))) | np.where(r & np.uint64(1 << 20), np.uint64(1) << ((r >> np.uint64(8)) % np.uint64(64)), np.uint64(0))
    h = np.where(grouped & (j % np.uint64(3) != 0), h ^ flip, h)
    hashes = [None if (int(x) % 20 == 0) else int(v) for x, v in zip(r >> np.uint64(32), h)]
    urls = [f"http://img{int(k) % 997}.example.com/{int(k):012d}.jpg" for k in j]
    return urls, hashes


def blank(seed: int, first: int, n: int, total: int) -> tuple[list, list]:
    """(urls, hashes) of images ``first .. first + n``: one hash, distinct URLs."""
    return [f"http://img{k % 997}.example.com/{k:012d}.jpg" for k in range(first, first + n)], [0x5A5A5A5A5A5A5A5A] * n


def _calls(total: int, seed: int = 1) -> list[tuple]:
    return [(seed, i, min(CALL, total - i), total) for i in range(0, total, CALL)]


def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _measured(fn, *args):
    """``fn(*args)`` in a worker, with the worker's peak RSS during it (VmHWM reset before: Linux clear_refs)
    and its growth over the RSS it started at (freed memory handed back first)."""
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _vm_kb("VmRSS")
    r = fn(*args)
    peak = _vm_kb("VmHWM")
    return r, fn.__name__, (peak / 1024, (peak - start) / 1024)


class PoolBackend:
    """Tasks in a process pool (results in order): the driver's memory is its own part only."""

    name = "local"

    def __init__(self, workers: int, measure: bool = False):
        self.pool = ProcessPoolExecutor(workers)
        self.measure = measure
        self.peaks: dict[str, tuple[float, float]] = {}

    def put(self, value):
        from pipeline.shuffle import Shared

        return Shared(value)

    def map(self, fn, calls):
        return list(self.imap(fn, calls))

    def imap(self, fn, calls):
        from collections import deque

        from pipeline.shuffle import shared_value

        pending: deque = deque()
        for args in calls:
            args = tuple(map(shared_value, args))
            pending.append(self.pool.submit(_measured, fn, *args) if self.measure else self.pool.submit(fn, *args))
            if len(pending) >= 64:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    def _result(self, fut):
        if not self.measure:
            return fut.result()
        r, name, peak = fut.result()
        old = self.peaks.get(name, (0.0, 0.0))
        self.peaks[name] = (max(old[0], peak[0]), max(old[1], peak[1]))
        return r

    def map_unordered(self, fn, calls, on_result):
        for r in self.imap(fn, calls):
            on_result(r)


def measure(total: int, mode: str, source=synthetic) -> dict:
    import tracemalloc

    from filters.dedup.config import DedupConfig
    from pipeline.dedup import partitions_for

    cfg = DedupConfig()
    P = partitions_for(total, cfg)
    calls = _calls(total)
    traced = mode.endswith("driver")
    out: dict = {"images": total, "mode": mode, "partitions": P, "calls": len(calls)}
    with tempfile.TemporaryDirectory(prefix="phash13-bench-") as tmp:
        backend = None
        if mode in ("after-driver", "tasks"):
            backend = PoolBackend(2, measure=mode == "tasks")
            backend.pool.submit(int, 0).result()  # the workers start before the measurement
        if traced:
            tracemalloc.start()
        c0, t0 = time.process_time(), time.perf_counter()
        if mode.startswith("before"):
            from filters.dedup.phash import phash_clusters

            urls: list = []
            hashes: list = []
            for call in calls:  # what the driver gathered from its hash tasks
                u, h = source(*call)
                urls += u
                hashes += h
            mapping = phash_clusters(urls, hashes, 4)
            out["clustered"] = len(mapping)
        else:
            from pipeline.images.phash_tasks import phash_canonical_index
            from pipeline.shuffle import LocalBackend

            index, counts = phash_canonical_index(backend or LocalBackend(), source, calls, 4, P, cfg,
                                                  os.path.join(tmp, "work"))
            out["clustered"] = counts["urls"]
            out["index_entries"] = index.entries
            out.update({k: v for k, v in counts.items() if k in ("component_steps", "confirmed_edges")})
        out["cpu_s"] = time.process_time() - c0
        out["wall_s"] = time.perf_counter() - t0
        if traced:
            out["driver_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if mode == "tasks":
            out["task_peak_mb"] = {k: round(v[0], 1) for k, v in backend.peaks.items()}
            out["task_growth_mb"] = {k: round(v[1], 1) for k, v in backend.peaks.items()}
        if mode in ("after-driver", "tasks"):
            backend.pool.shutdown()
            out["children_cpu_s"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + \
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    out["cpu_us_per_image"] = out["cpu_s"] / total * 1e6
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="100000,1000000")
    ap.add_argument("--modes", default="before-driver,after-driver,before-cpu,after-cpu")
    ap.add_argument("--blank", action="store_true", help="one huge component: every image the same hash")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], blank if args.blank else synthetic)))
        return
    for n in [int(x) for x in args.images.split(",")]:
        for mode in args.modes.split(","):
            r = subprocess.run([sys.executable, "-m", "bench.bench_phash", "--one", str(n), mode] + ["--blank"] * args.blank,
                               capture_output=True, text=True, check=True)
            print(r.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
