"""The image-table decision's fetch, in the driver: the distinct URLs as one list (before) or as files (after).

    python -m bench.bench_image_fetch --urls 1000000,3000000     # each size and mode in a fresh process

N distinct synthetic image URLs (~75 characters, spread over many hosts), written as the decision's tasks write
them (:func:`pipeline.images.join.distinct_urls`: a sorted file per hash partition, ~1,600 URLs a file as at a
snapshot: 1e8 URLs over 63,000 partitions). Measured in the driver, up to the call of ``img2dataset.download``
(replaced by a no-op: what img2dataset itself holds is its own, the same in both modes), each mode in a fresh
interpreter, peak RSS above the RSS after the imports (``VmHWM`` reset through ``/proc/self/clear_refs``) and
process CPU time:

- **before**: ``fetch_images(join.read_url_files(files), ...)``, what the decision did: the URLs read into the
  driver, ``sorted(set(...))``, written as one ``urls.parquet`` for img2dataset;
- **after**: ``fetch_images(join.url_files(files, n, P), ...)``: the files copied a record batch at a time into
  files of whole img2dataset shards (:func:`pipeline.images.download._write_url_files`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from bench.subrun import memory_mb, run_measurement

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/tmp") / "bench-image-fetch"
URLS_PER_FILE = 1600  # distinct URLs a partition holds at a snapshot (1e8 over 3.15e9 / 50,000 partitions)


def make_files(n: int) -> tuple[list[str], int]:
    """``n`` distinct URLs as hash-partitioned sorted files (cached by ``n``); returns (files, partitions)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from filters.dedup.common import hash64

    P = max(1, n // URLS_PER_FILE)
    folder = DATA / f"urls-{n}"
    done = folder / "_done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        step = 500_000
        parts: list[list] = [[] for _ in range(P)]
        for lo in range(0, n, step):
            urls = [f"https://img{i % 9973}.example-cdn.test/assets/{i:012d}/photo-{i * 7919 % 1000003:07d}.jpg"
                    for i in range(lo, min(n, lo + step))]
            q = (hash64(urls) % np.uint64(P)).astype(np.int64)
            for k in np.unique(q):
                parts[int(k)].append(pa.array([u for u, x in zip(urls, q) if x == k], pa.string()))
        for k, arrs in enumerate(parts):
            if arrs:
                a = pa.concat_arrays(arrs)
                pq.write_table(pa.table({"url": a.take(pa.compute.sort_indices(a))}), folder / f"urls-{k:06d}.parquet")
        done.write_text("")
    return sorted(str(p) for p in folder.glob("urls-*.parquet")), P


def one(n: int, mode: str) -> dict:
    """One measurement in this (fresh) process."""
    import img2dataset  # noqa: F401 - imported before the baseline, as the driver has it anyway

    from pipeline.images import join
    from pipeline.images.config import ImagesConfig
    from pipeline.images.stage import fetch_images

    files, P = make_files(n)
    work = DATA / f"work-{n}-{mode}"
    shutil.rmtree(work, ignore_errors=True)
    sys.modules["img2dataset.main"].download = lambda **kw: None  # up to img2dataset's call
    import img2dataset as i2d

    i2d.download = lambda **kw: None
    urls = join.url_files(files, n, P) if mode == "after" else join.read_url_files(files)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    base, _ = memory_mb()
    cpu = time.process_time()
    fetch_images(urls, work, ImagesConfig())
    cpu = time.process_time() - cpu
    _, peak = memory_mb()
    listed = sorted((work / "urls").glob("*.parquet")) or [work / "urls.parquet"]
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in listed)
    shutil.rmtree(work, ignore_errors=True)
    return dict(urls=n, mode=mode, files_in=len(files), list_files=len(listed), list_rows=rows,
                peak_above_base_mb=round(peak - base, 1), base_mb=round(base, 1), cpu_s=round(cpu, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--urls", default="1000000,3000000")
    ap.add_argument("--one", nargs=2, metavar=("N", "MODE"))
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(int(args.one[0]), args.one[1])))
        return
    for n in (int(x) for x in args.urls.split(",")):
        make_files(n)
        for mode in ("before", "after"):
            r = run_measurement([sys.executable, "-m", "bench.bench_image_fetch", "--one", str(n), mode])
            print(json.dumps(r))


if __name__ == "__main__":
    main()
