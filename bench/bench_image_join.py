"""The image table's per-unit lookup at many units: every part's footer (before) against the shuffle join.

    python -m bench.bench_plan --image-lookup --units 2000,20000     # each size in a fresh process
    python -m bench.bench_image_join --units 2000,20000              # the same

N units of one document with one image each, and an image table of one part per unit (as the offline image
table is: one part per WARC), every part holding one 4 KB JPEG under the unit's URL (URLs spread over the whole
URL space, as on a crawl). Measured, CPU seconds per unit:

- **before**: a unit's lookup through :class:`pipeline.images.table.ImageTable` as a unit task made it (a fresh
  table: every part's footer read for the URL ranges, then the parts that can hold the URLs), metadata only
  (the merge) and with bytes (the image and NSFW filters), on a sample of units;
- **after**: the join (:mod:`pipeline.images.join`: the units' URLs and the table's rows shuffled by URL hash,
  the rows routed back, one Parquet per unit) on the local backend, its tasks timed apart from the driver
  (:class:`bench.bench_plan.TimedBackend`), then a unit's lookup through its
  :class:`~pipeline.images.join.UnitImages` (its file, and the part holding its row for the bytes);
- files a unit task opens in each case (counted by wrapping ``obelics.storage``).

Two sizes show the slope: before, a unit's lookup grows with the parts; after, it stays flat.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

from bench.subrun import run_measurement

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "build" / "bench-image-join"
SAMPLE = 5  # units whose lookups are timed (each before-lookup reads every part's footer)


def make_folder(n: int) -> Path:
    """``n`` units (``units/u-XXXXXX.parquet``) and an image table of ``n`` parts (cached by ``n``)."""
    import pyarrow.parquet as pq

    from bench.bench_plan import _jpeg
    from obelics.document import WebDocument, documents_to_table
    from pipeline.images.table import ImageTable, make_row, rows_to_table

    folder = DATA / f"n-{n}"
    if (folder / "DONE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "units").mkdir(parents=True)
    table = ImageTable(folder / "table")
    from pipeline.images.config import ImagesConfig

    cfg = ImagesConfig()
    for i in range(n):
        url = f"https://img{(i * 7919) % 997}.example/photo-{i:06d}.jpg"  # spread over the URL space
        doc = WebDocument(texts=["Words before.", None], images=[None, url], metadata=[None, None],
                          general_metadata={"url": f"https://site{i % 500}.example/{i}", "warc_filename": f"w{i}",
                                            "warc_record_offset": 0, "warc_record_length": 1})
        pq.write_table(documents_to_table([doc]), folder / "units" / f"u-{i:06d}.parquet")
        table.write_part(f"{i:06d}", rows_to_table([make_row(url, _jpeg(i % 512), cfg)]))
    (folder / "DONE").write_text(str(n))
    return folder


def _counting():
    """Wrap obelics.storage's readers; returns the list of paths they open."""
    from obelics import storage

    opened: list[str] = []
    for name in ("read_parquet", "read_parquet_schema", "parquet_file"):
        real = getattr(storage, name)
        setattr(storage, name, lambda p, *a, _r=real, **k: (opened.append(str(p)), _r(p, *a, **k))[1])
    return opened


def one(n: int) -> dict:
    import pyarrow.parquet as pq

    from bench.bench_plan import TimedBackend
    from filters.dedup.config import DedupConfig
    from pipeline.dedup import partitions_for, survey
    from pipeline.images import join
    from pipeline.images.table import ImageTable

    folder = make_folder(n)
    units = sorted(p.stem for p in (folder / "units").glob("*.parquet"))
    sample = units[:: max(1, len(units) // SAMPLE)][:SAMPLE]
    urls = {u: [x for x in pq.read_table(folder / "units" / f"{u}.parquet", columns=["images"])["images"][0].as_py()
                if x] for u in sample}
    opened = _counting()
    res: dict = {"units": n, "parts": n, "sample": len(sample)}

    # before: a unit task's lookups through the whole table
    c0 = time.process_time()
    for u in sample:
        ImageTable(folder / "table").lookup(urls[u], with_bytes=False)
    res["before_lookup_meta_cpu_s"] = round((time.process_time() - c0) / len(sample), 4)
    opened.clear()
    c0 = time.process_time()
    for u in sample:
        ImageTable(folder / "table").lookup(urls[u], with_bytes=True)
    res["before_lookup_bytes_cpu_s"] = round((time.process_time() - c0) / len(sample), 4)
    res["before_files_opened_per_lookup"] = round(len(opened) / len(sample), 1)

    # after: the join, then a unit's lookups through its own rows
    out = folder / "join"
    shutil.rmtree(out, ignore_errors=True)
    backend, cfg = TimedBackend(), DedupConfig()
    c0, t0 = time.process_time(), time.perf_counter()
    unit_of = {str(folder / "units" / f"{u}.parquet"): u for u in units}
    paths = survey(backend, list(unit_of))
    P = partitions_for(paths.rows, cfg)
    work = str(out / "work")
    wanted = join.wanted_urls(backend, paths, P, cfg, f"{work}/wanted")
    files, n_urls = join.distinct_urls(backend, wanted, f"{work}/urls")
    tables, counts, _groups = join.table_rows(backend, ImageTable(folder / "table"), P, cfg, f"{work}/table")
    join.join_units(backend, paths, unit_of, wanted, tables, None, P, cfg, str(out / "units"), work)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    res.update(join_cpu_ms_per_unit=round(1000 * cpu / n, 3), join_task_cpu_ms_per_unit=round(1000 * backend.task_cpu / n, 3),
               join_driver_cpu_ms_per_unit=round(1000 * (cpu - backend.task_cpu) / n, 3), join_tasks=backend.tasks,
               join_wall_s=round(wall, 1), partitions=P, distinct_urls=n_urls, successes=counts.get("success", 0))
    opened.clear()
    c0 = time.process_time()
    for u in sample:
        join.UnitImages(str(folder / "table"), str(out / "units" / f"{u}.parquet")).lookup(urls[u], with_bytes=False)
    res["after_lookup_meta_cpu_s"] = round((time.process_time() - c0) / len(sample), 5)
    res["after_files_opened_per_lookup_meta"] = round(len(opened) / len(sample), 1)
    opened.clear()
    c0 = time.process_time()
    got = {u: join.UnitImages(str(folder / "table"), str(out / "units" / f"{u}.parquet")).lookup(urls[u])
           for u in sample}
    res["after_lookup_bytes_cpu_s"] = round((time.process_time() - c0) / len(sample), 5)
    res["after_files_opened_per_lookup_bytes"] = round(len(opened) / len(sample), 1)
    assert got[sample[0]] == ImageTable(folder / "table").lookup(urls[sample[0]])  # the oracle, untimed
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    shutil.rmtree(out, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", default="2000,20000", help="comma-separated sizes (each in a fresh process)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one(args.one)))
        return 0
    results = []
    for n in [int(x) for x in args.units.split(",")]:
        r = run_measurement([sys.executable, "-m", "bench.bench_image_join", "--one", str(n)])
        if r is None:
            return 1
        results.append(r)
        print(f"{n:>7,} units, {r['parts']:,} parts: a unit's lookup before {r['before_lookup_meta_cpu_s']} CPU-s "
              f"(metadata) / {r['before_lookup_bytes_cpu_s']} (bytes), {r['before_files_opened_per_lookup']} files "
              f"opened; after {r['after_lookup_meta_cpu_s']} / {r['after_lookup_bytes_cpu_s']} CPU-s, "
              f"{r['after_files_opened_per_lookup_meta']} / {r['after_files_opened_per_lookup_bytes']} files; the join "
              f"{r['join_cpu_ms_per_unit']} CPU-ms a unit = tasks {r['join_task_cpu_ms_per_unit']} + driver "
              f"{r['join_driver_cpu_ms_per_unit']} ({r['join_tasks']} tasks, P={r['partitions']}, "
              f"{r['join_wall_s']} s wall), peak RSS {r['peak_rss_mb']} MB")
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"{a['units']:,} -> {b['units']:,} units: a unit's lookup before {a['before_lookup_bytes_cpu_s']} -> "
              f"{b['before_lookup_bytes_cpu_s']} CPU-s, after {a['after_lookup_bytes_cpu_s']} -> "
              f"{b['after_lookup_bytes_cpu_s']}; the join {a['join_cpu_ms_per_unit']} -> {b['join_cpu_ms_per_unit']} "
              f"CPU-ms a unit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
