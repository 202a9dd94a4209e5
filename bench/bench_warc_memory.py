"""Memory over a long WARC: peak RSS reading the largest shared WARC repeated 50 times.

Concatenated gzip members are a valid WARC, so the file is the largest WARC of ../shared/data/warc
written ``--repeat`` times in a row. It is read through ``obelics.iter_warc_documents`` (default
profile); RSS is printed every ``--every`` documents to show it stays flat, then the peak.

    .venv/bin/python -m bench.bench_warc_memory               # 50 copies
    .venv/bin/python -m bench.bench_warc_memory --repeat 5    # quick check
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--every", type=int, default=100, help="print RSS every N documents")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--warc", help="WARC to repeat (default: the largest .warc.gz in ../shared/data/warc)")
    args = ap.parse_args(argv)

    from obelics.extract import iter_warc_documents
    from obelics.records import ReadStats

    if args.warc:
        src = Path(args.warc)
    else:
        cands = [p for p in (SHARED / "data" / "warc").glob("*.warc.gz") if ".wat." not in p.name and ".wet." not in p.name]
        if not cands:
            print(f"no WARC found in {SHARED / 'data' / 'warc'}", file=sys.stderr)
            return 2
        src = max(cands, key=lambda p: p.stat().st_size)
    data = src.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.warc.gz"
        with open(path, "wb") as f:
            for _ in range(args.repeat):
                f.write(data)
        del data
        size = path.stat().st_size
        # warm-up on the first copy only, so imports and caches count in the baseline
        for i, _ in enumerate(iter_warc_documents(src, profile=args.profile)):
            if i >= 5:
                break
        base = rss_mb()
        print(f"{src.name} x {args.repeat} = {size / 1e6:.1f} MB; RSS after warm-up {base:.1f} MB")
        stats = ReadStats()
        samples = []
        t = time.perf_counter()
        n = 0
        for n, _doc in enumerate(iter_warc_documents(path, profile=args.profile, stats=stats), 1):
            if n % args.every == 0:
                samples.append(rss_mb())
                print(f"  {n:>6} documents  {stats.records:>7} records  RSS {samples[-1]:7.1f} MB")
        sec = time.perf_counter() - t
        end = rss_mb()
    print(f"read {stats.records} records, {n} documents in {sec:.1f} s; skipped {dict(stats.skipped)}")
    if samples:
        first, last = samples[0], samples[-1]
        print(f"RSS: first sample {first:.1f} MB, last {last:.1f} MB, max {max(samples):.1f} MB "
              f"(growth over the run {last - first:+.1f} MB); at the end {end:.1f} MB")
    print(f"peak RSS of the process: {peak_rss_mb():.1f} MB (baseline after warm-up {base:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
