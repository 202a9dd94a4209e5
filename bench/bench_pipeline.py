"""End-to-end pipeline speed: documents/s per core on the shared WARCs, 1 vs 2 CPUs, time per stage.

    python -m bench.bench_pipeline [--copies 12] [--cpus 1 2] [--units N]

Every HTML-bearing shared WARC (and the embedded sample) is copied ``--copies`` times as separate
inputs (units), giving a few thousand pages; ``--units N`` instead concatenates the copies into N WARC
files (gzip members concatenate into a valid WARC), closer to Common Crawl's WARCs of ~30,000 pages
each, where the per-unit costs of the run weigh little. Each configuration runs in a fresh process with a local Ray
limited to N CPUs, with the offline settings of ``configs/run/sample.yaml`` (images from the WARCs'
image records, header/meta opt-out only): image download time is therefore not included, and the
copies are removed by URL dedup, so stages after it see the unique pages only. Prints pages/s,
pages/s per core, the 1->2 CPU scaling, seconds per stage, and the core-hours one Common Crawl
snapshot would take at the measured per-core rate (CC-MAIN-2023-06: 3.15 billion pages; ~88,000 WARCs).
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

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
SNAPSHOT_PAGES = 3.15e9  # CC-MAIN-2023-06 (Common Crawl's announcement)
OFFLINE = ["images.source=warc", "optout.images=[x_robots]", "optout.documents=[x_robots,meta]"]


def make_inputs(folder: Path, copies: int, units: int | None = None) -> list[str]:
    from obelics.sample import sample_warc_path

    warcs = [Path(sample_warc_path())] + sorted((SHARED / "data" / "warc").glob("*.warc.gz"))
    copied = [(k, w) for k in range(copies) for w in warcs]
    if units:  # copy k of every WARC goes to unit k % units, each unit one concatenated WARC
        out = []
        for u in range(units):
            dest = folder / f"unit{u:03d}.warc.gz"
            with open(dest, "wb") as f:
                for k, w in copied:
                    if k % units == u:
                        f.write(w.read_bytes())
            out.append(str(dest))
        return out
    out = []
    for k, w in copied:
        dest = folder / f"copy{k:03d}-{w.name}"
        shutil.copyfile(w, dest)
        out.append(str(dest))
    return out


def run_once(inputs: list[str], cpus: int, out: Path) -> dict:
    code = (
        "import json,sys,time;from pipeline.run import run;"
        "t=time.monotonic();s=run('default',sys.argv[1],json.loads(sys.argv[2]),overrides=json.loads(sys.argv[3]));"
        "print(json.dumps({'wall':time.monotonic()-t,'read':s.get('read'),'timings':s['timings'],'summary':s['summary']}))"
    )
    env = dict(os.environ, OBELICS_NUM_CPUS=str(cpus), PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(inputs), json.dumps(OFFLINE)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=12)
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--units", type=int, help="concatenate the copies into this many WARC files (default: one each)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        (tmp / "in").mkdir()
        inputs = make_inputs(tmp / "in", args.copies, args.units)
        mb = sum(Path(p).stat().st_size for p in inputs) / 1e6
        results = {}
        for cpus in args.cpus:
            t0 = time.monotonic()
            res = run_once(inputs, cpus, tmp / f"out-{cpus}")
            res["wall_total"] = time.monotonic() - t0
            results[cpus] = res
        pages = results[args.cpus[0]]["read"]["html_records"]
        print(f"inputs: {len(inputs)} WARC files, {mb:.1f} MB compressed, {pages} HTML pages")
        print(f"{'cpus':>4} {'seconds':>8} {'pages/s':>8} {'pages/s/core':>13} {'out docs':>8}")
        rates = {}
        for cpus, r in results.items():
            rate = pages / r["wall"]
            rates[cpus] = rate
            print(f"{cpus:>4} {r['wall']:>8.1f} {rate:>8.1f} {rate / cpus:>13.1f} {r['summary']['documents']:>8}")
        if len(rates) > 1:
            lo, hi = min(rates), max(rates)
            print(f"scaling {lo}->{hi} CPUs: {rates[hi] / rates[lo]:.2f}x (ideal {hi / lo:.0f}x)")
        best = max(results)
        print(f"\nseconds per stage ({best} CPUs):")
        for t in results[best]["timings"]:
            print(f"  {t['stage']:<60} {t.get('seconds', 0):>7.1f}")
        per_core = rates[min(rates)] / min(rates)
        core_hours = SNAPSHOT_PAGES / per_core / 3600
        print(f"\nprojected: one snapshot ({SNAPSHOT_PAGES / 1e9:.2f}B pages) at {per_core:.1f} pages/s/core "
              f"= {core_hours:,.0f} core-hours (excluding image download)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
