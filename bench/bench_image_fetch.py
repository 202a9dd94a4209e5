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

    python -m bench.bench_image_fetch --warc 100000,300000      # images.source: warc, the whole fetch

The WARC source: N image records (a 1x1 PNG each) in WARCs of 10,000, one unit each, every URL wanted, with
the units' image-record lists as extraction writes them; the decision's fetch part (``_image_locations`` and
``fetch_images``) with its tasks in a pool of 2 processes (:class:`bench.bench_phash.PoolBackend`), so that the
driver's peak is its own. ``before`` runs on a tree with the code before (its ``fetch_images`` takes a list:
``PYTHONPATH=<old tree> python <this file> --warc ...``), ``after`` on this one: the mode is the tree's.
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


WARC_RECORDS = 10_000  # image records a WARC (a unit) holds


def make_warcs(n: int) -> Path:
    """``n`` image records in WARCs of ``WARC_RECORDS``, each with its unit's image-record list (cached by ``n``)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder = DATA / f"warc-{n}"
    if (folder / "_done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "extract").mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(buf, "PNG")
    png = buf.getvalue()
    for k, lo in enumerate(range(0, n, WARC_RECORDS)):
        found = []
        with open(folder / f"u{k:05d}.warc.gz", "wb") as f:
            w = WARCWriter(f, gzip=True)
            for i in range(lo, min(n, lo + WARC_RECORDS)):
                url = f"https://img{i % 9973}.example-cdn.test/assets/{i:012d}/photo.png"
                http = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
                start = f.tell()
                w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(png), http_headers=http))
                found.append((url, start, f.tell() - start))
        pq.write_table(pa.table({"url": pa.array([x[0] for x in found], pa.string()),
                                 "offset": pa.array([x[1] for x in found], pa.int64()),
                                 "length": pa.array([x[2] for x in found], pa.int64())}),
                       folder / "extract" / f"u{k:05d}.image_records.parquet")
    (folder / "_done").write_text("")
    return folder


def one_warc(n: int) -> dict:
    """The WARC source's fetch part in this (fresh) process, tasks in a pool; the mode is this tree's code."""
    import logging
    from dataclasses import replace

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import pipeline.shuffle
    from bench.bench_phash import PoolBackend
    from filters.dedup.common import hash64
    from pipeline import stages
    from pipeline.images import download, join
    from pipeline.images.config import ImagesConfig
    from pipeline.images.stage import fetch_images

    logging.disable(logging.WARNING)
    folder = make_warcs(n)
    after = hasattr(download, "UrlFiles")
    units = sorted(p.name[: -len(".warc.gz")] for p in folder.glob("u*.warc.gz"))
    urls = pq.read_table(folder / "extract", columns=["url"]).column("url")  # the wanted URLs, as tasks write them
    P = max(16, n // URLS_PER_FILE)
    q = (hash64(urls.to_pylist()) % np.uint64(P)).astype(np.int64)
    ufolder = DATA / f"warc-{n}-urls"
    shutil.rmtree(ufolder, ignore_errors=True)
    ufolder.mkdir()
    files = []
    for k in np.unique(q):
        a = urls.filter(pa.array(q == k))
        files.append(str(ufolder / f"urls-{int(k):06d}.parquet"))
        pq.write_table(pa.table({"url": a.take(pa.compute.sort_indices(a))}), files[-1])
    del urls, q
    backend = PoolBackend(2)
    pipeline.shuffle.get_backend = lambda *a, **k: backend
    ctx = {"source_stage_dir": str(folder / "extract"), "backend": backend,
           "sources": {u: str(folder / f"{u}.warc.gz") for u in units}}
    work = DATA / f"warc-{n}-work"
    shutil.rmtree(work, ignore_errors=True)
    cfg = replace(ImagesConfig(), source="warc")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base, _ = memory_mb()
    cpu = time.process_time()
    located = stages._image_locations(units, ctx)
    wanted = join.url_files(files, n, P) if after else join.read_url_files(files)
    extra = {"dedup": None} if after else {}
    table = fetch_images(wanted, work, cfg, warcs=[ctx["sources"][u] for u in units], located=located, **extra)
    cpu = time.process_time() - cpu
    _, peak = memory_mb()
    counts, parts = dict(table.counts()), len(table.parts())
    shutil.rmtree(work, ignore_errors=True)
    return dict(urls=n, mode="after" if after else "before", warcs=len(units), parts=parts,
                counts=counts, peak_above_base_mb=round(peak - base, 1), base_mb=round(base, 1),
                driver_cpu_s=round(cpu, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--urls", default="1000000,3000000")
    ap.add_argument("--one", nargs=2, metavar=("N", "MODE"))
    ap.add_argument("--one-warc")
    ap.add_argument("--warc", help="sizes for the WARC source (the mode is this tree's code)")
    args = ap.parse_args()
    if args.warc:
        for n in (int(x) for x in args.warc.split(",")):
            make_warcs(n)
            print(json.dumps(run_measurement([sys.executable, __file__, "--one-warc", str(n)], env=None)))
        return
    if args.one_warc:
        print("RESULT " + json.dumps(one_warc(int(args.one_warc))))
        return
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
