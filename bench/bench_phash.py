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


def _calls(total: int, seed: int = 1) -> list[tuple]:
    return [(seed, i, min(CALL, total - i), total) for i in range(0, total, CALL)]


class PoolBackend:
    """Tasks in a process pool (results in order): the driver's memory is its own part only."""

    name = "local"

    def __init__(self, workers: int):
        self.pool = ProcessPoolExecutor(workers)

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
            pending.append(self.pool.submit(fn, *map(shared_value, args)))
            if len(pending) >= 64:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def map_unordered(self, fn, calls, on_result):
        for r in self.imap(fn, calls):
            on_result(r)


def measure(total: int, mode: str) -> dict:
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
        if mode == "after-driver":
            backend = PoolBackend(2)
            backend.pool.submit(int, 0).result()  # the workers start before the measurement
        if traced:
            tracemalloc.start()
        c0, t0 = time.process_time(), time.perf_counter()
        if mode.startswith("before"):
            from filters.dedup.phash import phash_clusters

            urls: list = []
            hashes: list = []
            for call in calls:  # what the driver gathered from its hash tasks
                u, h = synthetic(*call)
                urls += u
                hashes += h
            mapping = phash_clusters(urls, hashes, 4)
            out["clustered"] = len(mapping)
        else:
            from pipeline.images.phash_tasks import phash_canonical_index
            from pipeline.shuffle import LocalBackend

            index, counts = phash_canonical_index(backend or LocalBackend(), synthetic, calls, 4, P, cfg,
                                                  os.path.join(tmp, "work"))
            out["clustered"] = counts["urls"]
            out["index_entries"] = index.entries
        out["cpu_s"] = time.process_time() - c0
        out["wall_s"] = time.perf_counter() - t0
        if traced:
            out["driver_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if mode == "after-driver":
            backend.pool.shutdown()
            out["children_cpu_s"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + \
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    out["cpu_us_per_image"] = out["cpu_s"] / total * 1e6
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="100000,1000000")
    ap.add_argument("--modes", default="before-driver,after-driver,before-cpu,after-cpu")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1])))
        return
    for n in [int(x) for x in args.images.split(",")]:
        for mode in args.modes.split(","):
            r = subprocess.run([sys.executable, "-m", "bench.bench_phash", "--one", str(n), mode],
                               capture_output=True, text=True, check=True)
            print(r.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
