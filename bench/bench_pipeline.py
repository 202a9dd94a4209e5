"""End-to-end pipeline speed: pages/s per core on a realistic corpus, 1 vs 2 CPUs, CPU time per stage.

    python -m bench.bench_pipeline [--copies 120] [--units 8] [--cpus 1 2] [--corpus realistic|copies]
    python -m bench.bench_pipeline --copies 8 32 --units 2 --cpus 1 2   # + fixed vs steady-state costs

With two or more ``--copies`` sizes (the same ``--units``), every size runs with the first CPU count and
the largest also with the others; each stage's CPU (and each fused op's own) is then fitted as
``fixed + marginal x size`` (:func:`pipeline.cpu.fit_fixed_marginal`), which separates what a run pays once
(Ray and its actors, worker processes, model loads, files per unit) from the steady-state cost per page,
document or image: what a snapshot of 90,000 WARCs of ~35,000 pages each pays almost entirely. The
projection for one snapshot is then per stage (marginal CPU per item) x (items per snapshot), with the
items' shares of pages taken from this corpus's funnel and, separately, from the original build's
published funnel (:data:`FUNNELS`), plus the fixed costs counted once per WARC (an upper bound).

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
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
SNAPSHOT_PAGES = 3.15e9  # CC-MAIN-2023-06 (Common Crawl's announcement)
SNAPSHOT_WARCS = 90_000  # CC-MAIN-2023-06's WARC files (~1 GB, ~35,000 pages each)
# Items per page of one snapshot at each level of the funnel, from the original build's published figures
# (docs/reference.md §3.1, §8.1; 25 dumps, each taken as CC-MAIN-2023-06's 3.15B pages):
#   41.2B documents extracted (-> 0.523 a page); 63.6% of them not English (-> 0.190 English);
#   1.1B kept by S0 (MinHash, repetition, quality classifier: -> 0.0140); 3.6B image links for those
#   (3.27 a document), 55% downloaded (1.80 a document); 365M documents and 1.4B images after the node,
#   paragraph and document filters (0.33 of the documents; 1.27 images per document of the 1.1B: taken as
#   the images the NSFW check sees).
# "S0 kept": the text filters and the two text dedup passes keep what the original's S0 kept (its quality
# classifier and cross-dump MinHash included: a low estimate of the documents reaching the image stage);
# "English kept": they keep every English document, dedup then removing this corpus's share (a high one).
_EXTRACTED, _ENGLISH, _S0 = 41.2e9 / 25 / SNAPSHOT_PAGES, 0.364 * 41.2e9 / 25 / SNAPSHOT_PAGES, 1.1e9 / 25 / SNAPSHOT_PAGES
FUNNELS = {
    "S0 kept": {"page": 1.0, "extracted": _EXTRACTED, "text_kept": _S0, "url_kept": _S0, "dedup_kept": _S0},
    "English kept": {"page": 1.0, "extracted": _EXTRACTED, "text_kept": _ENGLISH, "url_kept": None,
                     "dedup_kept": None},  # None: this corpus's ratio to the level before
}
# per document reaching the image stage: image links, images downloaded, images left after the filters, documents kept
LINKS_PER_DOC, FETCHED_PER_DOC, KEPT_PER_DOC, DOCS_KEPT = 3.6 / 1.1, 0.55 * 3.6 / 1.1, 1.4 / 1.1, 0.365 / 1.1
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


def bench_inputs(cache: Path | None, tmp: Path, copies: int, units: int, corpus: str = "realistic") -> list[str]:
    """The corpus from ``cache`` (:func:`cached_inputs`) when given, else made afresh in ``tmp/in``."""
    if cache:
        return cached_inputs(cache, copies, units, corpus)
    (tmp / "in").mkdir()
    return make_inputs(tmp / "in", copies, units, corpus)


def cached_inputs(cache: Path, copies: int, units: int, corpus: str) -> list[str]:
    """The corpus of ``copies``/``units``/``corpus`` in ``cache``, made there first if it is not complete (its
    list of files, written last, marks it complete)."""
    folder = cache / f"{corpus}-c{copies}-u{units}"
    done = folder / "inputs.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    inputs = make_inputs(folder, copies, units or None, corpus)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(inputs))
    tmp.replace(done)
    return inputs


def run_once(inputs: list[str], cpus: int, out: Path, extra: tuple[str, ...] = (), profile: Path | None = None) -> dict:
    # 'all_cpu': everything the run's process tree used, its imports and Ray's processes' whole lives included
    # (read before Ray shuts down); 'imports': the driver's imports before run() starts, wall s. With
    # ``profile``, run() runs under cProfile on CPU time (this process only: a run without Ray is all of it)
    # and its stats are dumped there (``python -m pstats FILE``)
    prof_on = ("import cProfile;p=cProfile.Profile(time.process_time);p.enable();" if profile else "")
    prof_off = (f"p.disable();p.dump_stats({str(profile)!r});" if profile else "")
    code = (
        "import json,sys,time;t0=time.monotonic();from pipeline.run import run;from pipeline.cpu import process_tree_cpu;"
        f"t=time.monotonic();{prof_on}s=run('default',sys.argv[1],json.loads(sys.argv[2]),overrides=json.loads(sys.argv[3]));"
        f"{prof_off}w=time.monotonic()-t;a=process_tree_cpu();"
        "print(json.dumps({'wall':w,'imports':t-t0,'all_cpu':a,'read':s.get('read'),'timings':s['timings'],"
        "'summary':s['summary'],'cpu':s['cpu'],'stages':s['stages']}))"
    )
    env = dict(os.environ, OBELICS_NUM_CPUS=str(cpus), PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(inputs), json.dumps(OFFLINE + list(extra))],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["load"] = os.getloadavg()[0]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, nargs="+", default=[120],
                    help="corpus size(s); two or more: fixed and steady-state costs are fitted")
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--units", type=int, default=8,
                    help="concatenate the copies into this many WARC files (0: one file per copy)")
    ap.add_argument("--corpus", choices=["realistic", "copies"], default="realistic")
    ap.add_argument("--inline", action="store_true",
                    help="also run the largest size without Ray (run.use_ray=false): what Ray costs, per stage")
    ap.add_argument("--keep-inputs", type=Path, default=None, metavar="DIR",
                    help="make each corpus once in DIR and reuse it in later runs (it depends only on "
                         "--copies, --units, --corpus and the shared WARCs)")
    ap.add_argument("--profile", type=Path, default=None, metavar="FILE",
                    help="with --inline: run that run (without Ray) under cProfile on CPU time, dump its stats to FILE "
                         "and print the functions of the stages' framework (reading, writing, converting, flows), "
                         "not of the ops; its CPU figures are then the profiler's, inflated")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a profile override for every run (as `obelics run --set`), e.g. nsfw.amx_min_images=0: "
                         "the AMX NSFW path from a worker's first image, as a long-lived worker runs it")
    ap.add_argument("--fit-scaling", action="store_true",
                    help="run every size with every CPU count and fit each count's wall time as fixed + per page: "
                         "the scaling a long run approaches, beside the serial part a run pays once")
    args = ap.parse_args()
    if args.profile and not args.inline:
        ap.error("--profile needs --inline (it profiles the run without Ray)")
    if args.overrides:  # a bad override is found before any corpus is made (one line, exit 2)
        from obelics.config import ConfigError
        from pipeline.profile import load_profile

        try:
            load_profile("default", OFFLINE + args.overrides)
        except (ConfigError, ValueError) as e:
            ap.error(f"--set: {e}")
    sizes = sorted(set(args.copies))
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        by_size = {}
        for copies in sizes:
            inputs = cached_inputs(args.keep_inputs, copies, args.units, args.corpus) if args.keep_inputs else None
            if inputs is None:
                (tmp / f"in-{copies}").mkdir()
                inputs = make_inputs(tmp / f"in-{copies}", copies, args.units or None, args.corpus)
            mb = sum(Path(p).stat().st_size for p in inputs) / 1e6
            cpus = args.cpus if copies == sizes[-1] or args.fit_scaling else args.cpus[:1]
            results = {}
            for c in cpus:
                results[c] = run_once(inputs, c, tmp / f"out-{copies}-{c}", tuple(args.overrides))
                shutil.rmtree(tmp / f"out-{copies}-{c}", ignore_errors=True)
            by_size[copies] = results
            if args.inline and copies == sizes[-1]:
                inline = run_once(inputs, 1, tmp / "out-inline", ("run.use_ray=false", *args.overrides),
                                  args.profile.resolve() if args.profile else None)
            shutil.rmtree(tmp / f"in-{copies}", ignore_errors=True)
        report(by_size[sizes[-1]], args, len(inputs), mb)
        if args.inline:
            report_inline(by_size[sizes[-1]][args.cpus[0]], inline, args.cpus[0])
        if args.profile:
            report_profile(args.profile, inline["cpu"]["pages"])
        if len(sizes) > 1:
            rows = steady_rows([by_size[k][args.cpus[0]] for k in sizes])
            report_steady(rows, [by_size[k][args.cpus[0]] for k in sizes], args)
        if args.fit_scaling and len(sizes) > 1 and len(args.cpus) > 1:
            report_scaling_fit(by_size, sizes, args.cpus)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, args, n_inputs: int, mb: float) -> None:
    first = results[args.cpus[0]]
    pages = first["read"]["html_records"]
    print(f"inputs ({args.corpus}, {max(args.copies)} copies): {n_inputs} WARC files, {mb:.1f} MB compressed, "
          f"{pages} HTML pages ({pages / n_inputs:,.0f} a unit)")
    funnel = {st["stage"]: st for st in first["stages"]}
    docs = [(name, ((funnel.get(name) or {}).get("out") or {}).get("document"))
            for name in ("extract", "text_filters", "dedup.url", "dedup.minhash", "doc_filters", "final")]
    print("documents after: " + ", ".join(f"{n} {d:,}" for n, d in docs if d is not None))
    print("CPU s: the stages' (stats.json); all-in: the whole process tree's, imports, Ray's start and the writers "
          "included")
    print(f"{'cpus':>4} {'wall s':>7} {'pages/s':>8} {'pages/s/core':>13} {'CPU s':>7} {'pages/CPU-s':>12} "
          f"{'all-in':>7} {'pages/CPU-s':>12} {'out docs':>8} {'load':>5}")
    rates, cpu_rates = {}, {}
    for cpus, r in results.items():
        rates[cpus] = pages / r["wall"]
        cpu_rates[cpus] = pages / r["cpu"]["cpu_seconds"]
        print(f"{cpus:>4} {r['wall']:>7.1f} {rates[cpus]:>8.1f} {rates[cpus] / cpus:>13.1f} "
              f"{r['cpu']['cpu_seconds']:>7.1f} {cpu_rates[cpus]:>12.1f} {r['all_cpu']:>7.1f} "
              f"{pages / r['all_cpu']:>12.1f} {r['summary']['documents']:>8} {r.get('load', float('nan')):>5.1f}")
    if len(rates) > 1:
        lo, hi = min(rates), max(rates)
        more = results[hi]["cpu"]["cpu_seconds"] / results[lo]["cpu"]["cpu_seconds"]
        print(f"scaling {lo}->{hi} CPUs (wall): {rates[hi] / rates[lo]:.2f}x (ideal {hi / lo:.0f}x); CPU seconds "
              f"with {hi} vs {lo}: {more:.2f}x (1.00x: nothing lost to running in parallel)")
        print("where the wall time goes (s): unit stages + decisions + Ray's start + writers + report + the rest "
              "(profile, plan, Ray's shutdown) = run(); the driver's imports before it")
        for cpus, r in results.items():
            units, decisions, start, finish, rep = wall_parts(r)
            rest = r["wall"] - units - decisions - start - finish - rep
            print(f"  {cpus} CPU: {units:.1f} + {decisions:.1f} + {start:.1f} + {finish:.1f} + {rep:.1f} + {rest:.1f} "
                  f"= {r['wall']:.1f}; imports {r.get('imports', 0):.1f}")
    for cpus in sorted(results):
        cpu = results[cpus]["cpu"]
        print(f"\nper stage ({cpus} CPU): wall s, CPU s of the run's processes, their CPU ms per page read, "
              f"the units' own CPU ms per page (and each fused op's own)")
        for t, c in zip(results[cpus]["timings"], cpu["stages"]):
            unit = f"{c['unit_ms_per_page']:>8.3f}" if c.get("unit_ms_per_page") is not None else f"{'':>8}"
            print(f"  {t['stage']:<58} {t.get('seconds', 0):>7.1f} {c['cpu_seconds']:>7.1f} "
                  f"{c['ms_per_page']:>8.3f} {unit}")
            for o in c.get("ops") or ():
                print(f"    {o['op']:<56} {'':>7} {'':>7} {'':>8} {o['ms_per_page']:>8.3f}")
        print(f"  {'all stages':<58} {'':>7} {cpu['cpu_seconds']:>7.1f} {cpu['ms_per_page']:>8.3f}   "
              f"(outside them: Ray's start {cpu.get('start_cpu_seconds', 0):.1f}, the writers "
              f"{cpu.get('finish_cpu_seconds', 0):.1f}, the report {cpu.get('report_cpu_seconds', 0):.1f} CPU s; the "
              f"writers' and the report's imports, in the driver during the stages: "
              f"{cpu.get('warm_imports_cpu_seconds', 0):.1f})")
    one = min(rates)
    for label, per_core in ((f"wall, {one} CPU", rates[one] / one), (f"CPU time, {one} CPU", cpu_rates[one])):
        print(f"whole run as measured ({label}): one snapshot ({SNAPSHOT_PAGES / 1e9:.2f}B pages) at {per_core:.1f} "
              f"pages/s/core = {SNAPSHOT_PAGES / per_core / 3600:,.0f} core-hours (fixed costs of this small run "
              "included)")


def report_scaling_fit(by_size: dict, sizes: list[int], cpus: list[int]) -> None:
    """Per CPU count, the line through the runs' wall seconds (the whole run, and its unit stages alone) against
    their pages: the fixed wall a run pays once and the wall per page; the scaling at each size measured and at
    the steady state (the ratio of the walls per page: what a run of many more pages approaches)."""
    from pipeline.cpu import fit_fixed_marginal

    print("\nscaling fitted on wall time (runs of " + ", ".join(
        f"{by_size[k][cpus[0]]['cpu']['pages']:,}" for k in sizes) + " pages): fixed s + ms per page, per CPU count")
    fits = {}
    for c in cpus:
        runs = [by_size[k][c] for k in sizes]
        pts = [(r["cpu"]["pages"], r["wall"]) for r in runs]
        unit_pts = [(r["cpu"]["pages"], wall_parts(r)[0]) for r in runs]
        fits[c] = (fit_fixed_marginal(pts), fit_fixed_marginal(unit_pts))
        (f, m), (uf, um) = fits[c]
        print(f"  {c} CPU: whole run {f:.1f} s + {m * 1000:.3f} ms a page; unit stages {uf:.1f} s + {um * 1000:.3f} "
              f"ms a page; walls " + ", ".join(f"{w:.1f}" for _, w in pts) + " s, load "
              + ", ".join(f"{r.get('load', float('nan')):.1f}" for r in runs))
    lo = cpus[0]
    for c in cpus[1:]:
        (f1, m1), (_, um1) = fits[lo]
        (f2, m2), (_, um2) = fits[c]
        at = ", ".join(f"{by_size[k][lo]['wall'] / by_size[k][c]['wall']:.2f}x at {by_size[k][lo]['cpu']['pages']:,}"
                       for k in sizes)
        print(f"  scaling {lo}->{c} CPUs: measured {at} pages; steady state (wall per page) {m1 / m2:.2f}x, the unit "
              f"stages' {um1 / um2:.2f}x; 10x the largest run's pages {(f1 + m1 * 10 * by_size[sizes[-1]][lo]['cpu']['pages']) / (f2 + m2 * 10 * by_size[sizes[-1]][lo]['cpu']['pages']):.2f}x")


def wall_parts(r: dict) -> tuple[float, float, float, float, float]:
    """A run's wall seconds in its unit stages, its decisions, Ray's start, the writers and the report."""
    units = sum(t.get("seconds", 0) for t in r["timings"] if "unit_cpu_seconds" in t)
    decisions = sum(t.get("seconds", 0) for t in r["timings"] if "unit_cpu_seconds" not in t)
    cpu = r["cpu"]
    return (units, decisions, cpu.get("start_seconds", 0.0), cpu.get("finish_seconds", 0.0),
            cpu.get("report_seconds", 0.0))


# the stages' framework around their ops: a unit's Parquet read and written, documents <-> tables, the funnel's
# flows, the ops' clocks, the markers (pipeline.executor, pipeline.run, obelics.parquet)
FRAMEWORK = ("read_unit_table", "read_unit", "write_documents", "write_document_table", "documents_to_table",
             "table_to_documents", "document_flow", "op_clock", "write_json_atomic", "_as_form")


def report_profile(path: Path, pages: int) -> None:
    """The framework's functions (:data:`FRAMEWORK`) in the profiled run: calls, own and cumulative CPU ms a page
    (a function called inside another is counted in both; the profiler's overhead included)."""
    import pstats

    st = pstats.Stats(str(path)).stats  # {(file, line, name): (calls, primitive calls, own s, cumulative s, callers)}
    print(f"\nthe stages' framework in the profiled run without Ray ({path}; CPU ms a page of {pages:,}, cProfile's "
          "overhead included):")
    print(f"  {'function':<48} {'calls':>7} {'own':>8} {'cumul.':>8}")
    rows = [(k, v) for k, v in st.items() if k[2] in FRAMEWORK and ("/pipeline/" in k[0] or "/obelics/" in k[0])]
    for (file, _line, name), (_, calls, own, cum, _) in sorted(rows, key=lambda r: -r[1][3]):
        print(f"  {Path(file).parent.name + '/' + Path(file).name + ':' + name:<48} {calls:>7} "
              f"{own / pages * 1000:>8.4f} {cum / pages * 1000:>8.4f}")


def report_inline(ray_run: dict, inline: dict, cpus: int) -> None:
    """The same corpus with Ray (``cpus`` CPUs) and without (one process): CPU seconds per stage."""
    print(f"\nRay ({cpus} CPU) vs one process without Ray (run.use_ray=false), same corpus: CPU s per stage")
    for a, b in zip(ray_run["cpu"]["stages"], inline["cpu"]["stages"]):
        print(f"  {a['stage']:<58} {a['cpu_seconds']:>7.1f} {b['cpu_seconds']:>7.1f} {a['cpu_seconds'] - b['cpu_seconds']:>+7.1f}")
    a, b = ray_run["cpu"]["cpu_seconds"], inline["cpu"]["cpu_seconds"]
    print(f"  {'all stages':<58} {a:>7.1f} {b:>7.1f} {a - b:>+7.1f}   (Ray's own: {(a - b) / a:.0%} of the run; wall "
          f"{ray_run['wall']:.1f} vs {inline['wall']:.1f} s)")


# which funnel level a row's items are (the OBELICS shares are given per level)
_OP_LEVEL = {"extract": "page", "url_ban": "extracted", "text_filters": "extracted", "merge_images": "dedup_kept",
             "image_filters": "fetched", "optout": "dedup_kept", "nsfw": "images_kept", "doc_filters": "dedup_kept"}
_STAGE_LEVEL = {"dedup_url": "text_kept", "dedup_minhash": "url_kept", "image_table": "links"}


def _level(name: str) -> str:
    base = name.split("-", 1)[-1].split("+")[0].removesuffix(".apply")
    return _OP_LEVEL.get(base) or _STAGE_LEVEL.get(base) or "doc_kept"


def steady_rows(runs: list[dict]) -> list[dict]:
    """Per stage (and per fused op, its own CPU) of runs of the same plan at several sizes: fixed CPU s,
    steady-state CPU ms per page, and the items the row works on (pages, documents or images, in the
    largest run) with the steady-state CPU ms per item. A unit stage's ``rest`` is its CPU besides its
    ops (the stage's processes: Ray, reading and writing the unit's Parquet, the marker)."""
    from pipeline.cpu import fit_fixed_marginal

    big = runs[-1]
    pages = [r["cpu"]["pages"] for r in runs]
    stages = [r["cpu"]["stages"] for r in runs]
    timings = big["timings"]
    rows = []
    for i, st in enumerate(big["cpu"]["stages"]):
        name = st["stage"]
        fixed, per = fit_fixed_marginal([(p, s[i]["cpu_seconds"]) for p, s in zip(pages, stages)])
        if "ops" not in st:  # a decision: its items are the documents (image URLs) of the stage it reads
            nxt = timings[i + 1] if i + 1 < len(timings) else {}
            if _level(name) == "links":
                items = next((o["images"] for o in nxt.get("ops") or () if o["images"] is not None), None)
            else:
                items = nxt.get("docs")
            rows.append(_row(name, _level(name), fixed, per, items, pages[-1]))
            continue
        op_fit = []
        for j, o in enumerate(st["ops"]):
            f, m = fit_fixed_marginal([(p, s[i]["ops"][j]["cpu_seconds"]) for p, s in zip(pages, stages)])
            items = pages[-1] if o["documents"] is None else (o["images"] if _level(o["op"]) in ("fetched", "images_kept")
                                                               else o["documents"])
            op_fit.append(_row("  " + o["op"], _level(o["op"]), f, m, items, pages[-1]))
        first_docs = timings[i].get("docs")
        rest_level = "page" if i == 0 else _level(st["ops"][0]["op"])
        rows.append(_row(name + " (rest)", rest_level, fixed - sum(r["fixed_s"] for r in op_fit),
                         per - sum(r["ms_per_page"] for r in op_fit) / 1000, first_docs, pages[-1]))
        rows.extend(op_fit)
    # the dataset's writers and the report, in the driver after the last stage: per document written
    fixed, per = fit_fixed_marginal([(p, float(r["cpu"].get("finish_cpu_seconds") or 0.0)
                                      + float(r["cpu"].get("report_cpu_seconds") or 0.0)) for p, r in zip(pages, runs)])
    rows.append(_row("writers + report (driver)", "doc_kept", fixed, per, big["summary"]["documents"], pages[-1]))
    # what runs once outside every stage, whatever the run's size: Ray's start, and the rest of the process
    # tree's CPU (the driver's imports, the profile and plan): the mean of the runs, fixed only (a line
    # through them would read their noise as a cost per page)
    def mean(xs):
        return sum(xs) / len(xs)

    rows.append(_row("Ray's start (before the first stage)", "page",
                     mean([float(r["cpu"].get("start_cpu_seconds") or 0.0) for r in runs]), 0.0, pages[-1], pages[-1]))
    if all("all_cpu" in r for r in runs):
        rows.append(_row("imports and the rest (outside the run's clocks)", "page",
                         mean([r["all_cpu"] - outside_clocks(r) for r in runs]), 0.0, pages[-1], pages[-1]))
    return rows


ONCE_A_RUN = ("Ray's start (before the first stage)", "imports and the rest (outside the run's clocks)")


def outside_clocks(r: dict) -> float:
    """CPU seconds of a run that its own clocks measured: stages, Ray's start, writers, report."""
    cpu = r["cpu"]
    return cpu["cpu_seconds"] + sum(float(cpu.get(k) or 0.0) for k in ("start_cpu_seconds", "finish_cpu_seconds",
                                                                          "report_cpu_seconds"))


def _row(name, level, fixed, per_page_s, items, pages):
    ms_page = per_page_s * 1000
    return {"row": name, "level": level, "fixed_s": fixed, "ms_per_page": ms_page, "items": items,
            "share": (items / pages) if items else 0.0,
            "ms_per_item": (ms_page * pages / items) if items else None}


def _shares(rows: list[dict], funnel: dict) -> dict[str, float]:
    """Items per page at each level for ``funnel`` (None: this corpus's ratio to the level before)."""
    corpus = {}
    for r in rows:
        corpus.setdefault(r["level"], r["share"])
    out, prev = {}, None
    for level in ("page", "extracted", "text_kept", "url_kept", "dedup_kept"):
        v = funnel.get(level)
        if v is None and prev is not None and corpus.get(prev):
            v = out[prev] * corpus.get(level, 0.0) / corpus[prev]
        out[level] = v if v is not None else corpus.get(level, 0.0)
        prev = level
    d = out["dedup_kept"]
    out.update(links=d * LINKS_PER_DOC, fetched=d * FETCHED_PER_DOC, images_kept=d * KEPT_PER_DOC,
               doc_kept=d * DOCS_KEPT)
    return out


# the parts a page's steady-state CPU is summed into: a row's op or stage name (its stage number dropped)
STEADY_PARTS = (("extraction", ("extract",)), ("NSFW", ("nsfw",)), ("text filters + url_ban", ("text_filters", "url_ban")),
                ("image table", ("image_table",)), ("MinHash decision", ("dedup_minhash",)))
STAGE_REST = "unit stages besides their ops (Ray's worker and daemons, Parquet, markers)"


def steady_parts(rows: list[dict]) -> list[tuple[str, float]]:
    """The steady CPU ms a page of ``rows`` (:func:`steady_rows`: stages, ops, writers) summed by
    :data:`STEADY_PARTS`; a unit stage's CPU besides its ops goes to :data:`STAGE_REST`, every other row
    (the other decisions and applies, image filters, the writers) to "the rest"."""
    sums = dict.fromkeys([name for name, _ in STEADY_PARTS] + [STAGE_REST, "the rest"], 0.0)
    for r in rows:
        row = r["row"].strip()
        if row.endswith("(rest)"):
            sums[STAGE_REST] += r["ms_per_page"]
            continue
        name = row.split("-", 1)[1] if row[:2].isdigit() else row
        sums[next((part for part, names in STEADY_PARTS if name in names), "the rest")] += r["ms_per_page"]
    return list(sums.items())


def report_steady(rows: list[dict], runs: list[dict], args) -> None:
    pages = [r["cpu"]["pages"] for r in runs]
    print(f"\nfixed and steady-state CPU ({args.cpus[0]} CPU; runs of {', '.join(f'{p:,}' for p in pages)} pages in "
          f"{args.units} units; line through the runs' CPU per stage and per op):")
    print(f"  {'stage / op':<60} {'fixed s':>8} {'ms/page':>8} {'items':>8} {'level':>12} {'ms/item':>8}")
    for r in rows:
        per_item = f"{r['ms_per_item']:>8.3f}" if r["ms_per_item"] is not None else f"{'':>8}"
        print(f"  {r['row']:<60} {r['fixed_s']:>8.2f} {r['ms_per_page']:>8.3f} {r['items'] or 0:>8,} "
              f"{r['level']:>12} {per_item}")
    staged = [r for r in rows if r["row"] not in ONCE_A_RUN]
    total_fixed = sum(r["fixed_s"] for r in staged)
    steady = sum(r["ms_per_page"] for r in staged)
    once = sum(r["fixed_s"] for r in rows if r["row"] in ONCE_A_RUN)
    all_steady = sum(r["ms_per_page"] for r in rows)
    print(f"  {'all stages, the writers and the report':<60} {total_fixed:>8.2f} {steady:>8.3f}")
    print(f"  {'all of the above (all-in)':<60} {total_fixed + once:>8.2f} {all_steady:>8.3f}")
    print("where a page's steady CPU goes (ms a page, share): " + ", ".join(
        f"{name} {ms:.3f} ({ms / steady:.0%})" for name, ms in steady_parts(staged)))
    print(f"steady state on this corpus: {steady:.3f} CPU ms a page = {1000 / steady:,.0f} pages per CPU-second "
          f"({all_steady:.3f} = {1000 / all_steady:,.0f} all-in); fixed {total_fixed:.1f} CPU s a run "
          f"({total_fixed / args.units:.2f} a unit if all of it were per unit), and {once:.1f} CPU s once a run "
          "outside the stages (Ray's start, the driver's imports)")
    print(f"\nprojection for one snapshot ({SNAPSHOT_PAGES / 1e9:.2f}B pages, {SNAPSHOT_WARCS:,} WARCs; images not "
          "downloaded, their decoding, filters and NSFW included): core-hours per row, CPU ms per item x items")
    funnels = {"this corpus": None, **FUNNELS}
    shares = {k: (None if f is None else _shares(rows, f)) for k, f in funnels.items()}
    print(f"  {'stage / op':<60} " + " ".join(f"{k:>13}" for k in funnels))
    totals = dict.fromkeys(funnels, 0.0)
    for r in rows:
        cells = []
        for k in funnels:
            if shares[k] is None:
                ms = r["ms_per_page"]
            elif r["ms_per_item"] is None:
                ms = 0.0
            else:
                ms = r["ms_per_item"] * shares[k].get(r["level"], 0.0)
            h = ms / 1000 * SNAPSHOT_PAGES / 3600
            totals[k] += h
            cells.append(f"{h:>13,.0f}")
        print(f"  {r['row']:<60} " + " ".join(cells))
    fixed_h = total_fixed / args.units * SNAPSHOT_WARCS / 3600  # Ray's start and the imports: once a node, ~0
    print(f"  {'fixed costs, each WARC paying a unit share of this run':<60} " + " ".join(
        f"{fixed_h:>13,.0f}" for _ in funnels))
    print(f"  {'total core-hours':<60} " + " ".join(f"{totals[k] + fixed_h:>13,.0f}" for k in funnels))
    for k, sh in shares.items():
        if sh:
            print(f"  {k}: items a page: " + ", ".join(f"{lv} {v:.4g}" for lv, v in sh.items()))
    assert not any(math.isnan(v) for v in totals.values())


if __name__ == "__main__":
    main()
