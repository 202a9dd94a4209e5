"""The output step (Parquet + WebDataset writers): the driver's CPU and the step's wall time, before and after
spreading it over tasks.

    nice -n 10 python -m bench.bench_writers --docs 20000 --units 20 --per 2000 --cpus 1 2
    python -m bench.bench_writers --driver-merge 5000000     # the driver's own part alone, at any size

A synthetic final stage of ``--docs`` documents in ``--units`` unit Parquet files (about 300 words in 4
paragraphs, 0-3 images each, drawn from a pool of image URLs whose bytes sit in an image table), written as
the run writes it (``run.output_shard_docs`` = ``--per``, tars at ``--max-count`` documents or
``--max-bytes``), by:

- ``before``: the sequential path the run used (every shard through the driver: ``write_parts`` over the
  units' documents, counted as they pass);
- ``after, in-process``: :func:`pipeline.writers.parallel.write_dataset` without Ray (the same tasks, one
  after the other in the driver: what the spread design costs in all);
- ``after, Ray N CPUs``: the same on a local Ray of N CPUs (one warm-up step first, so the workers exist
  and have imported the writers, as in a run where the stages used them).

Printed per mode: wall seconds, the driver's CPU seconds (its own process), the CPU seconds of every
process (driver + Ray's), and per document; then the projection for a snapshot's documents written.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

SNAPSHOT_DOCS = 118e6  # documents written a snapshot, as BENCHMARKS.md's projections row took them (19 core-hours at 0.58 ms)

WORDS = ("the of and to in is was for on that with as by at from his her an were which are this be had it "
         "city river museum school garden history music island season market bridge village station harbour "
         "painting festival library mountain forest valley century church castle theatre").split()


def make_work(root: Path, docs: int, units: int, seed: int = 0) -> tuple[str, list[str], str]:
    """A final stage of ``docs`` documents in ``units`` units, and an image table of 400 URLs."""
    import pyarrow.parquet as pq

    from obelics.document import DOCUMENT_SCHEMA, WebDocument, documents_to_table
    from pipeline.images.config import ImagesConfig
    from pipeline.images.loopback import skimage_photos
    from pipeline.images.merge import merge_table
    from pipeline.images.table import ImageTable, make_row, rows_to_table

    rng = random.Random(seed)
    photos = skimage_photos(("rocket.jpg", "horse.png", "moon.png", "no_time_for_that_tiny.gif"))  # 4-113 KB
    names = sorted(photos)
    cfg = ImagesConfig()
    rows = [make_row(f"http://img{i}.example/{names[i % len(names)]}", photos[names[i % len(names)]], cfg)
            for i in range(400)]
    ImageTable(root / "images").write_part("p", rows_to_table(rows))
    lookup = {r["url"]: r for r in rows}
    urls = sorted(lookup)
    stage = root / "work" / "09-final"
    stage.mkdir(parents=True)
    per_unit = -(-docs // units)
    names_out = []
    for u in range(units):
        batch = []
        for k in range(u * per_unit, min(docs, (u + 1) * per_unit)):
            texts, images, meta = [], [], []
            for p in range(4):
                texts.append(" ".join(rng.choice(WORDS) for _ in range(75)).capitalize() + ".")
                images.append(None)
                meta.append(None)
                if p < rng.randrange(4):
                    u_img = rng.choice(urls)
                    texts.append(None)
                    images.append(u_img)
                    meta.append({"src": u_img})
            batch.append(WebDocument(texts=texts, images=images, metadata=meta,
                                     general_metadata={"url": f"https://site{k % 977}.example/page/{k}",
                                                       "warc_filename": f"unit-{u}.warc.gz",
                                                       "warc_record_offset": k * 1000, "warc_record_length": 900}))
        table = merge_table(documents_to_table(batch), lookup, with_bytes=False).select(DOCUMENT_SCHEMA.names)
        names_out.append(f"u{u:05d}")
        pq.write_table(table, stage / f"{names_out[-1]}.parquet")
    return str(root / "work"), names_out, str(root / "images")


def before(work, units, dest, cfg, per, images_dir):
    """The sequential path, as ``finish_run`` ran it before (counted as the shards pass)."""
    from pipeline.finish import write_sequentially
    from pipeline.report.funnel import Reservoir

    dists = {k: Reservoir() for k in ("images_per_document", "words_per_document")}
    outputs, flow, _ = write_sequentially(work, "09-final", units, dest, cfg, per, images_dir, dists)
    return outputs, flow


def after(work, units, dest, cfg, per, images_dir, use_ray):
    from pipeline.report.funnel import Reservoir
    from pipeline.writers.parallel import write_dataset

    dists = {k: Reservoir() for k in ("images_per_document", "words_per_document")}
    w = write_dataset(work, "09-final", units, dest, cfg, per, images_dir, use_ray, dists)
    return w.outputs, w.flow


def measure(label: str, fn, *args) -> dict:
    from pipeline.cpu import process_tree_cpu

    t0, c0, a0 = time.monotonic(), time.process_time(), process_tree_cpu()
    outputs, flow = fn(*args)
    wall, cpu, all_cpu = time.monotonic() - t0, time.process_time() - c0, process_tree_cpu() - a0
    n = flow["document"]
    r = {"mode": label, "docs": n, "files": len(outputs), "wall_s": round(wall, 2), "driver_cpu_s": round(cpu, 2),
         "all_cpu_s": round(all_cpu, 2), "driver_ms_per_doc": round(1000 * cpu / n, 4),
         "all_ms_per_doc": round(1000 * all_cpu / n, 4), "wall_ms_per_doc": round(1000 * wall / n, 4)}
    print(json.dumps(r), flush=True)
    return r


def driver_merge(n: int, per: int = 10000) -> float:
    """The driver's own part of the spread step for ``n`` documents, alone: each shard's result taken in order
    (counts summed, both distributions' reservoirs fed, every document's tar size through the cut), past
    the reservoirs' 200,000 values where each value costs a draw. Returns CPU ms a document."""
    from pipeline.report.funnel import Reservoir
    from pipeline.writers.webdataset import RollingPlan

    rng = random.Random(1)
    sizes = [rng.randrange(4_000, 200_000) for _ in range(per)]
    words = [rng.randrange(50, 2_000) for _ in range(per)]
    images = [rng.randrange(0, 6) for _ in range(per)]
    dists = {"images_per_document": Reservoir(), "words_per_document": Reservoir()}
    plan, flow, tars = RollingPlan(10_000, 1_000_000_000), Counter(), 0
    c0 = time.process_time()
    for _ in range(n // per):
        flow.update({"document": per, "image": 3 * per, "word": 300 * per})
        dists["images_per_document"].extend(images)
        dists["words_per_document"].extend(words)
        tars += len(plan.add(sizes))
    return 1000 * (time.process_time() - c0) / (n // per * per)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--per", type=int, default=2000, help="documents per output shard (run.output_shard_docs)")
    ap.add_argument("--max-count", type=int, default=10000)
    ap.add_argument("--max-bytes", type=int, default=50_000_000)
    ap.add_argument("--cpus", type=int, nargs="*", default=[1, 2], help="Ray sizes to measure")
    ap.add_argument("--skip-before", action="store_true")
    ap.add_argument("--driver-merge", type=int, default=0, metavar="N",
                    help="only time the driver's own part for N documents (no files written)")
    args = ap.parse_args(argv)
    if args.driver_merge:
        ms = driver_merge(args.driver_merge)
        print(f"driver's part alone: {ms:.5f} CPU ms a document over {args.driver_merge:,} documents; "
              f"{ms * SNAPSHOT_DOCS / 3.6e6:.2f} h for {SNAPSHOT_DOCS / 1e6:.0f} M documents")
        return

    from pipeline.writers.config import OutputConfig

    cfg = OutputConfig(webdataset_max_count=args.max_count, webdataset_max_bytes=args.max_bytes)
    with tempfile.TemporaryDirectory(prefix="bench-writers-") as tmp:
        root = Path(tmp)
        t0 = time.monotonic()
        work, units, images = make_work(root, args.docs, args.units)
        print(f"corpus: {args.docs} documents in {len(units)} units, {time.monotonic() - t0:.1f} s", flush=True)
        import webdataset  # noqa: F401 - imported before timing, as the run warms it during the stages

        # warm-up of both paths on two units (imports, first-use costs), so the first mode measured pays none
        before(work, units[:2], str(root / "warm-b"), cfg, max(1, args.per // 8), images)
        after(work, units[:2], str(root / "warm-a"), cfg, max(1, args.per // 8), images, False)
        results = []
        if not args.skip_before:
            results.append(measure("before (driver, sequential)", before, work, units, str(root / "b"), cfg,
                                   args.per, images))
        results.append(measure("after, in-process (no Ray)", after, work, units, str(root / "a0"), cfg, args.per,
                               images, False))
        for cpus in args.cpus:
            import ray

            from pipeline.shuffle import ensure_ray

            ensure_ray(num_cpus=cpus)
            after(work, units[:2], str(root / f"warm{cpus}"), cfg, max(1, args.per // 8), images, True)
            results.append(measure(f"after, Ray {cpus} CPU(s)", after, work, units, str(root / f"r{cpus}"), cfg,
                                   args.per, images, True))
            ray.shutdown()
        base = results[0]
        print("\n| mode | wall s | driver CPU s | all CPU s | driver CPU ms/doc | wall ms/doc |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['mode']} | {r['wall_s']} | {r['driver_cpu_s']} | {r['all_cpu_s']} | "
                  f"{r['driver_ms_per_doc']} | {r['wall_ms_per_doc']} |")
        print(f"\nprojection for {SNAPSHOT_DOCS / 1e6:.0f} M documents written a snapshot (driver CPU; all CPU):")
        for r in results:
            print(f"  {r['mode']}: driver {r['driver_ms_per_doc'] * SNAPSHOT_DOCS / 3.6e6:.1f} h, "
                  f"all processes {r['all_ms_per_doc'] * SNAPSHOT_DOCS / 3.6e6:.1f} core-hours "
                  f"(ratio to the first mode: driver {r['driver_cpu_s'] / max(base['driver_cpu_s'], 1e-9):.3f})")


if __name__ == "__main__":
    main()
