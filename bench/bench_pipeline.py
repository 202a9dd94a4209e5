"""End-to-end pipeline speed: pages/s per core on a realistic corpus, 1 vs 2 CPUs, CPU time per stage.

    python -m bench.bench_pipeline [--copies 120] [--units 8] [--cpus 1 2] [--corpus realistic|copies]

The corpus (``--corpus realistic``, the default, :mod:`bench.corpus`): every HTML-bearing shared WARC (and
the embedded sample) copied ``--copies`` times, copy 0 the original and in the others most pages moved to
the copy's hosts with 10% of their words swapped, so they are distinct documents that survive URL and
near-duplicate dedup (3% exact and 7% near duplicates, removed by those passes); the copies are
concatenated into ``--units`` WARC files (one per copy with ``--units 0``), closer to Common Crawl's WARCs
of ~30,000 pages each, where the per-unit costs of the run weigh little. ``--corpus copies`` makes plain
byte copies instead (what this bench did before: they all die at URL dedup, so the later stages see the
~140 unique pages only).

Each configuration runs in a fresh process with a local Ray limited to N CPUs, with the offline settings
of ``configs/run/sample.yaml`` (images from the WARCs' image records, header/meta opt-out only): image
download time is therefore not included. Prints pages/s (wall), pages per CPU-second of the run's
processes (stats.json's ``cpu``: meaningful on a busy machine, where wall time is not), the 1->2 CPU
scaling, the wall and CPU time per stage, the funnel's document counts, and the core-hours one Common
Crawl snapshot would take at the measured per-core rate (CC-MAIN-2023-06: 3.15 billion pages).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
SNAPSHOT_PAGES = 3.15e9  # CC-MAIN-2023-06 (Common Crawl's announcement)
OFFLINE = ["images.source=warc", "optout.images=[x_robots]", "optout.documents=[x_robots,meta]"]


def shared_warcs() -> list[Path]:
    from obelics.sample import sample_warc_path

    return [Path(sample_warc_path())] + sorted((SHARED / "data" / "warc").glob("*.warc.gz"))


def make_inputs(folder: Path, copies: int, units: int | None = None, corpus: str = "realistic") -> list[str]:
    """The bench's input WARCs in ``folder`` (see the module docstring)."""
    warcs = shared_warcs()
    if corpus == "realistic":
        from bench.corpus import realistic_corpus

        return realistic_corpus(warcs, folder, copies, units or copies)
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
        "print(json.dumps({'wall':time.monotonic()-t,'read':s.get('read'),'timings':s['timings'],'summary':s['summary'],"
        "'cpu':s['cpu'],'stages':s['stages']}))"
    )
    env = dict(os.environ, OBELICS_NUM_CPUS=str(cpus), PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(inputs), json.dumps(OFFLINE)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=120)
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--units", type=int, default=8,
                    help="concatenate the copies into this many WARC files (0: one file per copy)")
    ap.add_argument("--corpus", choices=["realistic", "copies"], default="realistic")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        (tmp / "in").mkdir()
        inputs = make_inputs(tmp / "in", args.copies, args.units or None, args.corpus)
        mb = sum(Path(p).stat().st_size for p in inputs) / 1e6
        results = {cpus: run_once(inputs, cpus, tmp / f"out-{cpus}") for cpus in args.cpus}
        report(results, args, len(inputs), mb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, args, n_inputs: int, mb: float) -> None:
    first = results[args.cpus[0]]
    pages = first["read"]["html_records"]
    print(f"inputs ({args.corpus}): {n_inputs} WARC files, {mb:.1f} MB compressed, {pages} HTML pages")
    funnel = {st["stage"]: st for st in first["stages"]}
    docs = [(name, ((funnel.get(name) or {}).get("out") or {}).get("document"))
            for name in ("extract", "text_filters", "dedup_url", "dedup_minhash", "doc_filters", "final")]
    print("documents after: " + ", ".join(f"{n} {d:,}" for n, d in docs if d is not None))
    print(f"{'cpus':>4} {'wall s':>7} {'pages/s':>8} {'pages/s/core':>13} {'CPU s':>7} {'pages/CPU-s':>12} "
          f"{'out docs':>8}")
    rates, cpu_rates = {}, {}
    for cpus, r in results.items():
        rates[cpus] = pages / r["wall"]
        cpu_rates[cpus] = pages / r["cpu"]["cpu_seconds"]
        print(f"{cpus:>4} {r['wall']:>7.1f} {rates[cpus]:>8.1f} {rates[cpus] / cpus:>13.1f} "
              f"{r['cpu']['cpu_seconds']:>7.1f} {cpu_rates[cpus]:>12.1f} {r['summary']['documents']:>8}")
    if len(rates) > 1:
        lo, hi = min(rates), max(rates)
        more = results[hi]["cpu"]["cpu_seconds"] / results[lo]["cpu"]["cpu_seconds"]
        print(f"scaling {lo}->{hi} CPUs (wall): {rates[hi] / rates[lo]:.2f}x (ideal {hi / lo:.0f}x); CPU seconds "
              f"with {hi} vs {lo}: {more:.2f}x (1.00x: nothing lost to running in parallel)")
    for cpus in sorted(results):
        cpu = results[cpus]["cpu"]
        print(f"\nper stage ({cpus} CPU): wall s, CPU s of the run's processes, their CPU ms per page read, "
              f"the units' own CPU ms per page")
        for t, c in zip(results[cpus]["timings"], cpu["stages"]):
            unit = f"{c['unit_ms_per_page']:>8.3f}" if c.get("unit_ms_per_page") is not None else f"{'':>8}"
            print(f"  {t['stage']:<58} {t.get('seconds', 0):>7.1f} {c['cpu_seconds']:>7.1f} "
                  f"{c['ms_per_page']:>8.3f} {unit}")
        print(f"  {'all stages':<58} {'':>7} {cpu['cpu_seconds']:>7.1f} {cpu['ms_per_page']:>8.3f}   "
              f"(then the writers and the report: {cpu.get('finish_cpu_seconds', 0):.1f} CPU s)")
    one = min(rates)
    for label, per_core in ((f"wall, {one} CPU", rates[one] / one), (f"CPU time, {one} CPU", cpu_rates[one])):
        print(f"projected ({label}): one snapshot ({SNAPSHOT_PAGES / 1e9:.2f}B pages) at {per_core:.1f} "
              f"pages/s/core = {SNAPSHOT_PAGES / per_core / 3600:,.0f} core-hours (excluding image download)")


if __name__ == "__main__":
    main()
