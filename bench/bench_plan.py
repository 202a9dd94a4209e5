"""A run plan of many tiny units: what the driver pays per unit, and what a run writes per unit.

    python -m bench.bench_plan --units 2000,20000                  # each size in a fresh process, no Ray
    python -m bench.bench_plan --units 2000 --ray --cpus 2         # units as Ray Data tasks, passes as Ray tasks
    python -m bench.bench_plan --units 20000 --stages extract,text_filters,dedup_url,dedup_minhash,final
    python -m bench.bench_plan --driver-only --units 2000,20000,100000 --stages extract,text_filters,dedup_url,final
    python -m bench.bench_plan --decisions --units 2000,20000          # each dedup decision: the driver's CPU per unit
    python -m bench.bench_plan --requests --units 20,80 --cpus 2       # object-store requests a run makes, by kind
    python -m bench.bench_plan --image-lookup --units 2000,20000       # a unit's image lookup: every part vs the join

Each unit is a WARC of one small HTML page (about 80 words of English sentences drawn per unit, one
image) and that image's response record (a 320x240 JPEG), so every stage of the default profile runs
on it offline (``configs/run/sample.yaml``'s settings: images from the WARC's image records), the NSFW
classifier switched off (its model time is ``bench_nsfw``'s). The run is ``pipeline.run.run`` itself: per-unit stages, every global pass deciding over all units, the
writers. Measured: wall seconds per unit;
the driver's own share (a rerun once every unit and decision is done: marker checks, decisions read,
the dataset gathered and written); the driver's CPU seconds per unit (without Ray the driver
does all the work; with ``--ray`` its own process only, the work is in the workers); the driver's
peak RSS; files and bytes the run leaves in its folder per unit (what object storage would hold);
seconds per stage. Two sizes show whether the per-unit costs stay flat as the plan grows.

``--driver-only`` measures the driver's bookkeeping alone, at sizes the full run cannot reach on a small
machine: a real run of ``TEMPLATE_UNITS`` units is cloned into a completed work folder of N units (every
unit's Parquet and markers copied under the N inputs' unit names, the decisions as they are, the inputs
hard links to the template's WARCs), only ``stats.json`` missing; the run is then resumed in a fresh
process, so it checks every marker, reads every decision, streams every unit's stats into the funnel
and every unit's documents into the writers. Measured: its wall and CPU seconds per unit and its peak
RSS (the driver of a Ray run pays this on top of Ray's own per-task costs).

``--decisions`` decides each dedup pass (``pipeline.dedup.decide``) over the first stage of such a clone,
on the local backend with its tasks timed: the CPU left to the driver (listing, survey, plans, the shuffle
index, routing bookkeeping) per unit, beside the tasks'.

``--requests`` runs the plan (Ray, ``--cpus`` CPUs) with its work folder and outputs on the loopback S3
server (moto, in the bench's process; the inputs stay local files, as Common Crawl is read over HTTPS) and
counts every request the server gets, by kind (GET, HEAD, LIST, PUT, POST: multipart and batch deletes,
DELETE) and by who sent it: the driver's S3 client says ``app/driver`` in its User-Agent
(``AWS_SDK_UA_APP_ID``), Ray's workers ``app/task`` (set before Ray starts, so its processes inherit it).
Two sizes give the requests per unit (the slope) apart from the run's fixed ones; a second run of the same
folder (every unit and decision done, ``stats.json`` removed) gives what a resume costs.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from bench.subrun import Periodic, memory_mb, run_measurement

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "build" / "bench-plan"
JPEG_POOL = 4096  # distinct images (pHash); unit i shows image i % JPEG_POOL under its own URL
OFFLINE = ["images.source=warc", "optout.images=[x_robots]", "optout.documents=[x_robots,meta]"]
# the NSFW classifier costs ~1 s an image on a loaded CPU: model time, not the plan's (bench_nsfw measures it)
SETTINGS = OFFLINE + ["nsfw.enabled=false"]
SENTENCES = [
    "The museum opened its new wing to visitors on a quiet Sunday morning in early spring.",
    "Local farmers have been selling fresh vegetables at the market for more than twenty years.",
    "She explained that the bridge would be closed for repairs until the end of the month.",
    "Our team tested the recipe three times before we were happy with the final result.",
    "The library offers free classes for children who want to learn how to write stories.",
    "Heavy rain is expected across the region tonight, so drivers should take extra care.",
    "He spent the summer walking along the coast and taking photographs of old lighthouses.",
    "The city council will discuss the new cycling plan at its meeting next Thursday.",
    "Many people believe that a short walk after dinner helps them sleep better at night.",
    "The company said it would hire two hundred new workers at the factory next year.",
    "Students from the village school planted trees in the park as part of a science project.",
    "The old train station has been turned into a small cinema with a cafe on the first floor.",
    "If you are planning a trip to the mountains, remember to bring warm clothes and water.",
    "The band played for almost three hours and the crowd sang along to every single song.",
    "Scientists have found that the lake is home to several kinds of rare fish and birds.",
    "A new bakery on the corner sells bread that is made every morning with local flour.",
]


@functools.lru_cache(maxsize=JPEG_POOL)
def _jpeg(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    blocks = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)  # distinct per unit (pHash)
    img = Image.fromarray(blocks).resize((320, 240), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=60)
    return buf.getvalue()


def make_units(n: int, folder: Path) -> list[str]:
    """``n`` one-page WARCs (cached by ``n``); returns their paths."""
    import numpy as np
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    paths = [str(folder / f"unit-{i:06d}.warc.gz") for i in range(n)]
    if (folder / "DONE").exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, path in enumerate(paths):
        site = f"site{i % 500}.example"
        url, img = f"https://{site}/page{i}", f"https://img.{site}/photo{i}.jpg"
        picked = rng.choice(SENTENCES, 9, replace=False)
        paras = ["<p>" + " ".join(picked[k:k + 3]) + "</p>" for k in (0, 3, 6)]
        html = (f"<html><head><title>Page {i}</title></head><body><h1>News from {site}</h1>{''.join(paras)}"
                f'<img src="{img}" alt="a photo"></body></html>').encode()
        with open(path, "wb") as f:
            w = WARCWriter(f, gzip=True)
            for u, body, ctype in ((url, html, "text/html; charset=utf-8"), (img, _jpeg(i % JPEG_POOL), "image/jpeg")):
                headers = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                           protocol="HTTP/1.1")
                w.write_record(w.create_warc_record(u, "response", payload=io.BytesIO(body), http_headers=headers,
                                                    warc_headers_dict={"WARC-Date": "2023-02-01T00:00:00Z"}))
    (folder / "DONE").write_text(str(n))
    return paths


def out_dir(n: int, use_ray: bool, stages: str | None) -> Path:
    return DATA / f"out-{n}-{'ray' if use_ray else 'local'}-{len(stages.split(',')) if stages else 'default'}"


class Monitor(Periodic):
    """Every ``interval`` seconds, a JSON line in ``path``: wall seconds, this process's RSS and CPU seconds,
    the newest stage folder of ``work`` and its files (a run stopped part-way still says how far it went, and
    what each stage cost: its CPU between samples, its peak RSS, its objects)."""

    def __init__(self, path: Path, work: Path, interval: float = 10.0):
        super().__init__(interval)
        self.path, self.work = path, work
        self.t0 = time.monotonic()

    def sample(self) -> dict:
        stages = sorted(p.name for p in self.work.iterdir()) if self.work.exists() else []
        files = sum(1 for _ in os.scandir(self.work / stages[-1])) if stages else 0
        r = resource.getrusage(resource.RUSAGE_SELF)
        return {"t": round(time.monotonic() - self.t0, 1), "clock": time.strftime("%H:%M:%S"),
                "rss_mb": round(memory_mb()[0]), "peak_mb": round(memory_mb()[1]),
                "cpu_s": round(r.ru_utime + r.ru_stime, 1), "load": os.getloadavg()[0],
                "stage": stages[-1] if stages else None, "stage_files": files}

    def tick(self) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(self.sample()) + "\n")


def per_stage(out: Path, n: int, monitor: Path, timings: list[dict]) -> dict:
    """Each stage's wall and CPU seconds (the run's timings), files a unit in its folder, and the peak RSS
    sampled while it ran (the monitor's samples in its window of the run's wall time)."""
    samples = [json.loads(x) for x in monitor.read_text().splitlines()] if monitor.exists() else []
    res, t = {}, 0.0
    for x in timings:
        lo, hi = t, t + (x.get("seconds") or 0)
        t = hi
        folder = out / "work" / x["stage"]
        files = sum(len(f) for _, _, f in os.walk(folder))  # (a decision's shares in their subfolder too)
        peak = max([s["peak_mb"] for s in samples if lo <= s["t"] <= hi + 10] or [None], key=lambda v: v or 0)
        res[x["stage"]] = {"seconds": x.get("seconds"), "cpu_ms_per_unit": round(1000 * (x.get("cpu_seconds") or 0) / n, 2),
                           "files_per_unit": round(files / n, 3), "peak_rss_mb": peak}
    return res


def run_one(n: int, use_ray: bool, cpus: int, stages: str | None = None) -> dict:
    from pipeline.run import run

    inputs = make_units(n, DATA / f"units-{n}")
    out = out_dir(n, use_ray, stages)
    shutil.rmtree(out, ignore_errors=True)
    if use_ray:
        os.environ["OBELICS_NUM_CPUS"] = str(cpus)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    settings = SETTINGS + [f"run.use_ray={str(use_ray).lower()}"] + ([f"run.stages=[{stages}]"] if stages else [])
    monitor = out.parent / f"{out.name}.monitor.jsonl"
    monitor.unlink(missing_ok=True)
    with Monitor(monitor, out / "work"):
        stats = run("default", out, inputs, overrides=settings)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    files = [p for p in out.rglob("*") if p.is_file()]
    work = [p for p in files if "work" in p.relative_to(out).parts]
    by_kind: dict[str, int] = {}
    for p in work:
        kind = "marker" if p.name.endswith(".stats.json") else "decision share" if p.parent.name == "units" \
            else "unit parquet" if p.suffix == ".parquet" and p.parent.parent.name == "work" else "other"
        by_kind[kind] = by_kind.get(kind, 0) + 1
    driver_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    # the driver's own share: every unit and decision is done, only the run's marker and outputs are gone,
    # so the rerun checks every marker, reads every decision, gathers the units and writes the dataset
    (out / "stats.json").unlink()
    t2 = time.perf_counter()
    run("default", out, inputs, overrides=settings)
    resume = time.perf_counter() - t2
    return {"units": n, "ray": use_ray, "stages": stages or "default", "cpus": cpus if use_ray else 1, "wall_s": round(wall, 1),
            "wall_ms_per_unit": round(1000 * wall / n, 2), "driver_cpu_ms_per_unit": round(1000 * driver_cpu / n, 2),
            "driver_peak_rss_mb": round(r1.ru_maxrss / 1024),
            "resume_all_done_ms_per_unit": round(1000 * resume / n, 2), "files": len(files),
            "files_per_unit": round(len(files) / n, 2), "work_files_by_kind_per_unit": {k: round(v / n, 2)
                                                                                        for k, v in by_kind.items()},
            "bytes_per_unit": round(sum(p.stat().st_size for p in files) / n),
            "input_bytes_per_unit": round(sum(os.path.getsize(p) for p in inputs) / n),
            "documents_out": stats["summary"]["documents"],
            "stage_seconds": {t["stage"]: t.get("seconds") for t in stats.get("timings", [])},
            "per_stage": per_stage(out, n, monitor, stats.get("timings", [])),
            "finish_cpu_s": (stats.get("cpu") or {}).get("finish_cpu_seconds")}


TEMPLATE_UNITS = 20


def clone_run(n: int, stages: str | None, reuse: bool = False) -> tuple[Path, list[str], list[str]]:
    """A completed run of ``n`` units cloned from a real run of :data:`TEMPLATE_UNITS` units, without its
    ``stats.json`` (see the module docstring); returns its folder, inputs and the run's settings.
    ``reuse``: the clone made before (by another process) as it is."""
    from pipeline.markers import read_json, write_json_atomic
    from pipeline.run import run
    from pipeline.sources import input_name

    settings = SETTINGS + ["run.use_ray=false"] + ([f"run.stages=[{stages}]"] if stages else [])
    tdir = DATA / f"template-{len(stages.split(',')) if stages else 'default'}"
    template = make_units(TEMPLATE_UNITS, DATA / f"units-{TEMPLATE_UNITS}")
    run("default", tdir, template, overrides=settings, restart_if_changed=True)  # done: returns at once
    out = DATA / f"driver-{n}-{len(stages.split(',')) if stages else 'default'}"
    links = DATA / f"links-{n}"
    inputs = [str(links / f"unit-{i:07d}.warc.gz") for i in range(n)]
    if reuse:
        return out, inputs, settings
    shutil.rmtree(out, ignore_errors=True)
    links.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(inputs):
        if not os.path.exists(p):
            os.link(template[i % TEMPLATE_UNITS], p)
    plan = read_json(tdir / "run.json")
    out.mkdir(parents=True)
    write_json_atomic(out / "run.json", {**plan, "inputs": inputs})
    shutil.copy(tdir / "profile.yaml", out / "profile.yaml")
    t_units = [input_name(x) for x in template]
    for stage in sorted((tdir / "work").iterdir()):
        dst = out / "work" / stage.name
        if (stage / "decision.json").exists():
            shutil.copytree(stage, dst)
            continue
        dst.mkdir(parents=True)
        for i, x in enumerate(inputs):
            u, t = input_name(x), t_units[i % TEMPLATE_UNITS]
            os.link(stage / f"{t}.parquet", dst / f"{u}.parquet")
            marker = json.loads((stage / f"{t}.stats.json").read_text())
            (dst / f"{u}.stats.json").write_text(json.dumps({**marker, "unit": u}))
    return out, inputs, settings


def driver_one(n: int, stages: str | None) -> dict:
    """The resumed run of a cloned, completed run of ``n`` units (run in a fresh process)."""
    import pipeline.finish  # noqa: F401  (what the driver imports anyway, outside the measurement)
    import pipeline.report.html  # noqa: F401
    import pipeline.writers.webdataset  # noqa: F401
    from pipeline.run import run

    out, inputs, settings = clone_run(n, stages, reuse=True)
    rss0 = memory_mb()[0]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    stats = run("default", out, inputs, overrides=settings)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    shutil.rmtree(out, ignore_errors=True)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"units": n, "stages": stages or "default", "wall_s": round(wall, 1),
            "wall_ms_per_unit": round(1000 * wall / n, 2), "cpu_ms_per_unit": round(1000 * cpu / n, 2),
            "rss_before_mb": round(rss0), "peak_rss_mb": round(r1.ru_maxrss / 1024),
            "documents_out": stats["summary"]["documents"]}


class TimedBackend:
    """The local backend, timing the CPU its tasks use: what is left of a decision's CPU is the driver's."""

    name = "local"

    def __init__(self):
        from pipeline.shuffle import LocalBackend

        self.inner, self.task_cpu, self.tasks = LocalBackend(), 0.0, 0

    def put(self, value):
        return self.inner.put(value)

    def _timed(self, fn):
        def task(*args):
            c0 = time.process_time()
            try:
                return fn(*args)
            finally:
                self.task_cpu += time.process_time() - c0
                self.tasks += 1
        return task

    def map(self, fn, calls):
        return self.inner.map(self._timed(fn), calls)

    def imap(self, fn, calls):
        return self.inner.imap(self._timed(fn), calls)

    def map_unordered(self, fn, calls, on_result):
        return self.inner.map_unordered(self._timed(fn), calls, on_result)


DECISION_PASSES = ["url", "image_url", "paragraphs", "image_set", "minhash"]


def decisions_one(n: int, passes: list[str]) -> dict:
    """Each dedup pass decided over the first stage's units of a cloned run of ``n`` units (the template's
    documents repeated, so the decisions remove the copies), on the local backend: CPU seconds in all, in
    the tasks, and the driver's (the rest), per unit; peak RSS of the process."""
    import tempfile

    from pipeline.dedup import decide
    from pipeline.sources import input_name

    out, inputs, _ = clone_run(n, None, reuse=True)
    stage = next(p for p in sorted((out / "work").iterdir()) if not (p / "decision.json").exists())
    units = [input_name(x) for x in inputs]
    res = {"units": n, "stage": stage.name, "passes": {}}
    for name in passes:
        backend = TimedBackend()
        with tempfile.TemporaryDirectory(dir=DATA) as ddir:
            c0, t0 = time.process_time(), time.perf_counter()
            decide(name, str(stage), units, {"profile": "default", "decision_dir": ddir, "backend": backend})
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        res["passes"][name] = {"cpu_ms_per_unit": round(1000 * cpu / n, 3), "wall_s": round(wall, 1),
                               "task_cpu_ms_per_unit": round(1000 * backend.task_cpu / n, 3),
                               "driver_cpu_ms_per_unit": round(1000 * (cpu - backend.task_cpu) / n, 3),
                               "tasks": backend.tasks}
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    shutil.rmtree(out, ignore_errors=True)
    return res


def decisions_main(args) -> int:
    passes = args.passes.split(",")
    if args.one:
        print("RESULT " + json.dumps(decisions_one(args.one, passes)))
        return 0
    for n in [int(x) for x in args.units.split(",")]:
        clone = ["-c", f"from bench.bench_plan import clone_run; clone_run({n}, None); print('RESULT {{}}')"]
        if run_measurement([sys.executable, *clone]) is None:
            return 1
        r = run_measurement([sys.executable, "-m", "bench.bench_plan", "--decisions", "--passes", args.passes,
                             "--one", str(n)])
        if r is None:
            return 1
        print(f"{n:>8,} units, decisions over the first stage ({r['stage']}), local backend, peak RSS "
              f"{r['peak_rss_mb']} MB:")
        for name, x in r["passes"].items():
            print(f"    {name}: {x['cpu_ms_per_unit']} CPU-ms/unit = tasks {x['task_cpu_ms_per_unit']} + driver "
                  f"{x['driver_cpu_ms_per_unit']} ({x['tasks']:,} tasks, {x['wall_s']} s wall)")
    return 0


def _request_kind(method: str, path: str, query: str) -> str:
    from urllib.parse import parse_qs

    q = parse_qs(query, keep_blank_values=True)
    if method == "GET" and path.strip("/").count("/") == 0:  # the bucket itself: a listing
        return "LIST"
    if method == "POST":
        return "DELETE" if "delete" in q else "POST"  # batch delete; multipart create/complete
    return method


def _request_area(path: str, query: str, prefix: str) -> str:
    """The part of the run folder a request is about: ``work/<stage>``, ``parquet``, ``webdataset``, a file."""
    from urllib.parse import parse_qs, unquote

    key = unquote(path).split("/", 2)[2] if path.strip("/").count("/") else parse_qs(query).get("prefix", [""])[0]
    rest = key[len(prefix):].lstrip("/") if key.startswith(prefix) else key
    parts = rest.split("/")
    return "/".join(parts[:2]) if parts[0] == "work" and len(parts) > 2 else parts[0] if len(parts) > 1 else rest or "."


def requests_one(n: int, cpus: int) -> dict:
    """Run ``n`` units with the work folder and outputs on the loopback S3 server (Ray, ``cpus`` CPUs), then
    resume it once done (``stats.json`` removed); count the server's requests (see the module docstring)."""
    from collections import Counter

    from tests.pipeline.s3_server import LoopbackS3

    inputs = make_units(n, DATA / f"units-{n}")
    log: list[tuple] = []

    def counting(app):
        def middleware(environ, start_response):
            ua = environ.get("HTTP_USER_AGENT", "")
            who = "driver" if "app/driver" in ua else "task" if "app/task" in ua else "other"
            log.append((who, environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")))
            return app(environ, start_response)
        return middleware

    os.environ["AWS_SDK_UA_APP_ID"] = "task"  # what Ray's processes inherit
    with LoopbackS3() as s3:
        s3.server._server.app = counting(s3.server._server.app)
        bucket = s3.make_bucket("bench")
        os.environ["OBELICS_NUM_CPUS"] = str(cpus)
        from pipeline.shuffle import ensure_ray

        ensure_ray(num_cpus=cpus)
        os.environ["AWS_SDK_UA_APP_ID"] = "driver"  # this process's S3 clients, made from now on
        from pipeline.run import run

        out = f"{bucket}/run"
        settings = SETTINGS + ["run.use_ray=true"]
        res = {"units": n, "cpus": cpus}
        for phase in ("fresh", "resume"):
            log.clear()
            t0 = time.perf_counter()
            stats = run("default", out, inputs, overrides=settings)
            res[phase] = {"wall_s": round(time.perf_counter() - t0, 1), "by": {}, "areas": {}}
            by: Counter = Counter()
            areas: Counter = Counter()
            for who, method, path, query in log:
                kind = _request_kind(method, path, query)
                by[f"{who} {kind}"] += 1
                areas[f"{who} {_request_area(path, query, 'run')} {kind}"] += 1
            res[phase]["by"], res[phase]["areas"] = dict(sorted(by.items())), dict(sorted(areas.items()))
            if phase == "fresh":
                res["documents_out"] = stats["summary"]["documents"]
                res["objects"] = len(s3.keys("bench", "run/"))
                res["objects_work"] = len(s3.keys("bench", "run/work/"))
                s3.client.delete_object(Bucket="bench", Key="run/stats.json")
    return res


def requests_main(args) -> int:
    results = []
    for n in [int(x) for x in args.units.split(",")]:
        r = run_measurement([sys.executable, "-m", "bench.bench_plan", "--requests", "--one", str(n), "--cpus",
                             str(args.cpus)])
        if r is None:
            return 1
        results.append(r)
        print(f"{n:,} units (Ray, {r['cpus']} CPUs), {r['documents_out']} documents out, {r['objects']} objects "
              f"({r['objects_work']} in work/):")
        for phase in ("fresh", "resume"):
            x = r[phase]
            print(f"  {phase} ({x['wall_s']} s): {sum(x['by'].values()):,} requests: {x['by']}")
            print(f"    by area: {x['areas']}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        du = b["units"] - a["units"]
        for phase in ("fresh", "resume"):
            keys = sorted(set(a[phase]["by"]) | set(b[phase]["by"]))
            slope = {k: round((b[phase]["by"].get(k, 0) - a[phase]["by"].get(k, 0)) / du, 2) for k in keys}
            fixed = {k: round(a[phase]["by"].get(k, 0) - slope[k] * a["units"]) for k in keys}
            tot_a, tot_b = sum(a[phase]["by"].values()), sum(b[phase]["by"].values())
            print(f"{phase}: per unit ({a['units']} -> {b['units']} units) {round((tot_b - tot_a) / du, 2)} requests: "
                  f"{slope}; fixed: {fixed}")
            for who in ("driver", "task"):
                w = sum(v for k, v in slope.items() if k.startswith(who + " "))
                print(f"    {who}: {round(w, 2)} requests a unit")
    return 0




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", default="2000,20000", help="comma-separated plan sizes (each in a fresh process)")
    ap.add_argument("--ray", action="store_true", help="run.use_ray=true (default: no Ray, one process)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--stages", help="run.stages as a comma-separated list (default: the profile's)")
    ap.add_argument("--keep", action="store_true", help="keep the run folders under build/bench-plan")
    ap.add_argument("--driver-only", action="store_true",
                    help="the driver's bookkeeping alone, on a completed run cloned to N units")
    ap.add_argument("--decisions", action="store_true",
                    help="the dedup decisions alone over a cloned run's first stage: the driver's CPU per unit")
    ap.add_argument("--passes", default=",".join(DECISION_PASSES), help="for --decisions: comma-separated passes")
    ap.add_argument("--requests", action="store_true",
                    help="the object-store requests of a run on the loopback S3 server, by kind and sender")
    ap.add_argument("--image-lookup", action="store_true",
                    help="a unit's image-table lookup before/after the join, and the join's CPU (bench_image_join)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.image_lookup:
        from bench.bench_image_join import main as image_lookup_main

        return image_lookup_main(["--units", args.units])
    if args.requests:
        if args.one:
            print("RESULT " + json.dumps(requests_one(args.one, args.cpus)))
            return 0
        return requests_main(args)
    if args.decisions:
        return decisions_main(args)
    if args.driver_only:
        return driver_main(args)
    if args.one:
        r = run_one(args.one, args.ray, args.cpus, args.stages)
        if not args.keep:
            shutil.rmtree(out_dir(args.one, args.ray, args.stages), ignore_errors=True)
        print("RESULT " + json.dumps(r))
        return 0
    results = []
    for n in [int(x) for x in args.units.split(",")]:
        cmd = [sys.executable, "-m", "bench.bench_plan", "--one", str(n), "--cpus", str(args.cpus)]
        cmd += ["--ray"] if args.ray else []
        cmd += ["--keep"] if args.keep else []
        cmd += ["--stages", args.stages] if args.stages else []
        r = run_measurement(cmd)
        if r is None:
            return 1
        results.append(r)
        print(f"{r['units']:>7,} units ({'Ray, ' + str(r['cpus']) + ' CPUs' if r['ray'] else 'no Ray, 1 process'}): "
              f"{r['wall_s']} s, {r['wall_ms_per_unit']} ms/unit wall, driver CPU {r['driver_cpu_ms_per_unit']} ms/unit, "
              f"driver peak RSS {r['driver_peak_rss_mb']} MB; rerun with every unit done (markers, decisions, "
              f"writers) {r['resume_all_done_ms_per_unit']} ms/unit; {r['files_per_unit']} files/unit "
              f"({r['work_files_by_kind_per_unit']}), {r['bytes_per_unit']:,} bytes/unit "
              f"(input {r['input_bytes_per_unit']:,}), {r['documents_out']:,} documents out; stages: {r['stages']}")
        print(f"    seconds per stage: {r['stage_seconds']}")
        for stage, x in r["per_stage"].items():
            print(f"    {stage}: {x}")
        print(f"    the output step and the funnel (finish): {r['finish_cpu_s']} CPU-s")
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"{a['units']:,} -> {b['units']:,} units: wall/unit {a['wall_ms_per_unit']} -> {b['wall_ms_per_unit']} ms, "
              f"driver peak RSS {a['driver_peak_rss_mb']} -> {b['driver_peak_rss_mb']} MB")
    return 0


def driver_main(args) -> int:
    if args.one:
        print("RESULT " + json.dumps(driver_one(args.one, args.stages)))
        return 0
    results = []
    for n in [int(x) for x in args.units.split(",")]:
        stages = ["--stages", args.stages] if args.stages else []
        clone = ["-c", f"from bench.bench_plan import clone_run; clone_run({n}, {args.stages!r}); print('RESULT {{}}')"]
        if run_measurement([sys.executable, *clone]) is None:  # the clone, in a process of its own
            return 1
        r = run_measurement([sys.executable, "-m", "bench.bench_plan", "--driver-only", "--one", str(n), *stages])
        if r is None:
            return 1
        results.append(r)
        print(f"{r['units']:>8,} units, every one done (driver only, no Ray): {r['wall_s']} s, "
              f"{r['wall_ms_per_unit']} ms/unit wall, {r['cpu_ms_per_unit']} ms/unit CPU, peak RSS "
              f"{r['peak_rss_mb']} MB ({r['rss_before_mb']} MB after imports), {r['documents_out']:,} documents "
              f"out; stages: {r['stages']}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        per = 1024 * (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["units"] - a["units"])
        print(f"{a['units']:,} -> {b['units']:,} units: peak RSS {a['peak_rss_mb']} -> {b['peak_rss_mb']} MB "
              f"({per:.1f} KB per unit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
