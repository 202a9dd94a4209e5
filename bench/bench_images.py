"""Image stage overhead: our ``download_images`` against img2dataset alone, same URL list, same run.

A loopback server (127.0.0.1) serves scikit-image's photos under ``--urls`` distinct URLs (a query
string makes them unique; ``--fail-rate`` of them answer 404). The nine photos repeat, so their bytes
repeat and Parquet's dictionary encoding stores each once (a 1,000-image shard of 270 MB is a 7 MB file);
``--distinct`` serves each URL distinct bytes (the query in a PNG/JPEG comment), as a crawl's images are,
so every shard and part holds all its bytes. For each of ``--runs`` rounds, in alternating order:

- ``img2dataset``: ``img2dataset.download`` with exactly the arguments our stage passes
  (``pipeline.images.download.img2dataset_kwargs``: Parquet output, no re-encoding, sha256), nothing else;
- ``ours``: ``pipeline.images.download.download_images``: the same call with our User-Agent/header-log
  handler, then the image table (PIL header probe, truncation check, header join, sorted Parquet part).

It prints the median wall seconds of each, URLs/s and our overhead in percent (goal: <= 10%), the median
CPU seconds of each (driver and its img2dataset worker processes, also apart; the server runs in a process of
its own and is not counted), which stay readable when a loaded machine makes wall times noisy, and the bytes
each wrote to disk (our stage writes each image once, into its table part; img2dataset's shard keeps the
metadata).

    .venv/bin/python -m bench.bench_images --runs 5              # 2,000 URLs, 5 rounds
    .venv/bin/python -m bench.bench_images --urls 300 --runs 1   # quick check
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _serve(conn) -> None:
    """The loopback server in a process of its own (its CPU is not the stage's; no GIL shared with it)."""
    from pipeline.images.loopback import LoopbackImageServer, skimage_photos

    with LoopbackImageServer(skimage_photos()) as srv:
        conn.send(srv.base_url)
        conn.recv()  # until the bench is done


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its reaped children (img2dataset's worker pool)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime, b.ru_utime + b.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--per-shard", type=int, default=1000, help="URLs per img2dataset shard")
    ap.add_argument("--fail-rate", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per download (a loaded machine needs more)")
    ap.add_argument("--distinct", action="store_true", help="distinct bytes per URL (no repeated photos)")
    args = ap.parse_args()

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import img2dataset
    import pyarrow as pa

    from obelics.parquet import write_table_atomic
    from pipeline.images.config import ImagesConfig
    from pipeline.images.download import download_images, img2dataset_kwargs
    from pipeline.images.loopback import skimage_photos

    photos = skimage_photos()
    names = sorted(photos)
    cfg = ImagesConfig(processes_count=args.processes, thread_count=args.threads,
                       number_sample_per_shard=args.per_shard, timeout=args.timeout, retries=0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_images_"))
    times: dict[str, list[float]] = {"img2dataset": [], "ours": []}
    cpu: dict[str, list[float]] = {"img2dataset": [], "ours": []}
    workers_cpu: dict[str, list[float]] = {"img2dataset": [], "ours": []}
    written: dict[str, list[int]] = {"img2dataset": [], "ours": []}
    total_bytes = 0
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        every = int(1 / args.fail_rate) if args.fail_rate > 0 else 0
        urls = [f"{base_url}/status/404?i={i}" if every and i % every == 0
                else f"{base_url}/{'distinct' if args.distinct else 'img'}/{names[i % len(names)]}?i={i}"
                for i in range(args.urls)]
        total_bytes = sum(len(photos[names[i % len(names)]]) for i in range(args.urls)
                          if not (every and i % every == 0))
        n_ok = sum(1 for u in urls if "/status/" not in u)
        url_file = tmp / "urls.parquet"
        write_table_atomic(url_file, pa.table({"url": sorted(urls)}))
        # warm-up (untimed): imports, spawn and the page cache, so the first timed round is not penalised
        img2dataset.download(**img2dataset_kwargs(cfg, url_file, tmp / "warmup"))
        shutil.rmtree(tmp / "warmup", ignore_errors=True)
        for r in range(args.runs):
            order = ["img2dataset", "ours"] if r % 2 == 0 else ["ours", "img2dataset"]
            for which in order:
                out = tmp / f"{which}-{r}"
                t0, c0 = time.perf_counter(), _cpu()
                if which == "img2dataset":
                    img2dataset.download(**img2dataset_kwargs(cfg, url_file, out))
                else:
                    counts = download_images(urls, out, cfg, ["127.0.0.1/32"]).counts()
                times[which].append(time.perf_counter() - t0)
                c1 = _cpu()
                cpu[which].append(c1[0] + c1[1] - c0[0] - c0[1])
                workers_cpu[which].append(c1[1] - c0[1])
                written[which].append(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()))
                if which == "ours" and (counts["success"] + counts["timeout"], counts["http_404"]) != (
                        n_ok, len(urls) - n_ok):
                    raise SystemExit(f"unexpected outcome: {dict(counts)}")
                if which == "ours" and counts["timeout"]:  # a loaded machine's loopback server: said, not fatal
                    print(f"round {r}: {counts['timeout']} of {n_ok} downloads timed out", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        parent.send("stop")
        server.join(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = statistics.median(times["img2dataset"]), statistics.median(times["ours"])
    print(f"\nURLs: {args.urls:,} ({total_bytes / 1e6:.1f} MB of photos, "
          f"{'distinct bytes per URL' if args.distinct else 'nine photos repeated'}), processes {args.processes}, "
          f"threads {args.threads}, runs {args.runs}")
    print(f"img2dataset alone : {a:7.2f} s  ({args.urls / a:7.1f} URLs/s)  runs {[round(x, 2) for x in times['img2dataset']]}")
    print(f"ours (stage)      : {b:7.2f} s  ({args.urls / b:7.1f} URLs/s)  runs {[round(x, 2) for x in times['ours']]}")
    ca, cb = statistics.median(cpu["img2dataset"]), statistics.median(cpu["ours"])
    print(f"CPU seconds       : img2dataset {ca:.2f}, ours {cb:.2f}: {100 * (cb - ca) / ca:+.1f}%  "
          f"runs {[round(x, 2) for x in cpu['img2dataset']]} / {[round(x, 2) for x in cpu['ours']]}")
    wa, wb = statistics.median(workers_cpu["img2dataset"]), statistics.median(workers_cpu["ours"])
    print(f"  of which workers: img2dataset {wa:.2f}, ours {wb:.2f}; driver: img2dataset {ca - wa:.2f}, "
          f"ours {cb - wb:.2f} (medians of each)")
    print(f"load average      : {' '.join(f'{x:.1f}' for x in os.getloadavg())} (at the end)")
    print(f"overhead          : {100 * (b - a) / a:+.1f}%   (goal <= 10%)")
    print(f"written to disk   : img2dataset {statistics.median(written['img2dataset']) / 1e6:.1f} MB, "
          f"ours {statistics.median(written['ours']) / 1e6:.1f} MB (medians)")


if __name__ == "__main__":
    main()
