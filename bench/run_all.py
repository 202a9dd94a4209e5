"""Run every benchmark in sequence with its recorded command (what ``make bench`` does).

Each benchmark prints its own figures and ratios measured in the same run; the results are recorded
in BENCHMARKS.md with these commands. ``--quick`` runs smaller sizes to check that each one works.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHES = [
    # (name, full arguments, quick arguments)
    ("bench.bench_extract", [], ["--pages", "300", "--pages-2023", "30", "--runs", "1"]),
    ("bench.bench_warc_memory", [], []),
    ("bench.bench_filters", ["--repeat", "5"], ["--repeat", "1"]),
    ("bench.bench_dedup", [], ["--docs", "20000"]),
    ("bench.bench_images", [], ["--urls", "200", "--runs", "1"]),
    ("bench.bench_nsfw", ["--repeat", "3"], ["--repeat", "1"]),
    ("bench.bench_pipeline", [], ["--copies", "4", "--units", "2", "--cpus", "2"]),
    ("bench.bench_train", [], ["--steps", "3"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="names (e.g. bench_extract) to run")
    args = ap.parse_args()
    failed = []
    for name, full, quick in BENCHES:
        if args.only and name.split(".")[-1] not in args.only:
            continue
        cmd = [sys.executable, "-m", name, *(quick if args.quick else full)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        r = subprocess.run(cmd)
        print(f"=== {name}: exit {r.returncode} in {time.monotonic() - t0:.0f}s", flush=True)
        if r.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
