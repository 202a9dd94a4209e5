"""Where a run's CPU time went: per-stage CPU seconds and milliseconds per page, for stats.json and the report.

Two figures per stage, both CPU time (user + system), not wall time, so they mean something on a busy machine:

- ``unit_cpu_seconds``: the CPU time the units' own work took (each unit measures its worker process's
  ``time.process_time`` around its work and writes it in its marker; a resumed run reads the markers of
  the units done before, so the figure covers every unit once);
- ``cpu_seconds``: the CPU time of every local process of the run (the driver, and on a local Ray its
  workers and daemons) while the stage ran: the work plus scheduling, serialisation and Ray's own
  processes. On a Ray cluster only the driver's machine is counted. The difference to the first figure
  is what the stage paid besides its work. Zero for a stage found done in its marker.

``ms_per_page`` divides by the HTML pages the run read, so figures of runs of any size compare.

Inside a fused stage every op's own CPU time is recorded too (:func:`op_clock`, summed over units: ``ops``),
with the documents and images it was given, so a cost can be read per item (an image for NSFW, a
document for the document filters) and projected onto another corpus's funnel (:func:`fit_fixed_marginal`,
``bench/bench_pipeline.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def process_tree_cpu() -> float:
    """CPU seconds used so far by this process, its reaped children and its living descendants.

    psutil (a dependency) reads the descendants; a descendant that exited without being reaped by this
    process takes its time with it, so this is a lower bound on what Ray's processes used.
    """
    import psutil

    t = os.times()  # the reaped children's time; this process's own from process_time: os.times counts in
    # 10 ms ticks, which read a step of a few ms (the writers of a small run) as 0
    total = time.process_time() + t.children_user + t.children_system
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.Error:
        return total
    for p in kids:
        try:
            c = p.cpu_times()  # a reaped grandchild (a Ray worker) counts in its parent's children_*
            total += c.user + c.system + c.children_user + c.children_system
        except psutil.Error:  # exited between the listing and the read
            continue
    return total


def op_clock(name: str, docs) -> Callable[[], dict]:
    """Start timing op ``name`` given ``docs`` (a list of documents, a table of them, or a source path for the first op);
    the returned function gives ``{"op_cpu": {op, cpu_seconds, documents, images}}`` (this process's CPU
    time since the start, and the documents and images the op was given; None for a source)."""
    c0 = time.process_time()
    if isinstance(docs, list):
        n_docs, n_images = len(docs), sum(d.num_images for d in docs)
    elif hasattr(docs, "num_rows"):  # a DOCUMENT_SCHEMA table (pipeline.ops.UnitOp.arrow)
        from pipeline.report.funnel import table_images

        n_docs, n_images = docs.num_rows, table_images(docs)
    else:
        n_docs = n_images = None

    def took() -> dict:
        return {"op_cpu": {"op": name, "cpu_seconds": round(time.process_time() - c0, 4), "documents": n_docs,
                           "images": n_images}}

    return took


def sum_ops(per_unit: list[list[dict]]) -> list[dict]:
    """Ops' records of several units (each a list of ``op_cpu`` values, in op order) summed per op, in the
    order of the first unit that ran them; pass the units sorted, so the sums are the same floats whatever
    order they finished in."""
    out: dict[str, dict] = {}
    for ops in per_unit:
        for o in ops:
            row = out.setdefault(o["op"], {"op": o["op"], "cpu_seconds": 0.0, "documents": None, "images": None})
            row["cpu_seconds"] = round(row["cpu_seconds"] + float(o.get("cpu_seconds") or 0.0), 4)
            for k in ("documents", "images"):
                if o.get(k) is not None:
                    row[k] = (row[k] or 0) + int(o[k])
    return list(out.values())


class StageClock:
    """Wall and process-tree CPU seconds of one stage: ``with StageClock() as c: ...`` then ``c.seconds``."""

    def __enter__(self) -> StageClock:
        self._t, self._c = time.monotonic(), process_tree_cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self._t
        self.cpu_seconds = process_tree_cpu() - self._c


def cpu_summary(timings: list[dict], pages: int | None) -> dict:
    """The ``cpu`` section of stats.json from the run's stage timings (``cpu_seconds``/``unit_cpu_seconds``
    per stage) and the number of HTML pages read."""
    per = 1000.0 / pages if pages else None
    stages = []
    total = unit_total = 0.0
    for t in timings:
        cpu, unit_cpu = float(t.get("cpu_seconds") or 0.0), t.get("unit_cpu_seconds")
        total += cpu
        unit_total += float(unit_cpu or 0.0)
        row = {"stage": t["stage"], "cpu_seconds": round(cpu, 3),
               "ms_per_page": round(cpu * per, 4) if per else None}
        if unit_cpu is not None:
            row["unit_cpu_seconds"] = round(float(unit_cpu), 3)
            row["unit_ms_per_page"] = round(float(unit_cpu) * per, 4) if per else None
        if t.get("ops"):
            row["ops"] = [dict(o, ms_per_page=round(o["cpu_seconds"] * per, 4) if per else None) for o in t["ops"]]
        stages.append(row)
    return {"pages": pages or 0, "stages": stages, "cpu_seconds": round(total, 3),
            "unit_cpu_seconds": round(unit_total, 3),
            "ms_per_page": round(total * per, 4) if per else None,
            "pages_per_cpu_second": round(pages / total, 1) if pages and total > 0 else None}


def cpu_html(merged: dict) -> str:
    """The report's "CPU time by stage" table ('' when the stats have no ``cpu`` section)."""
    import html

    cpu = merged.get("cpu")
    if not cpu or not cpu.get("stages"):
        return ""

    def f(x, nd=2):
        return "—" if x is None else f"{x:,.{nd}f}"

    rows = ["<h2>CPU time by stage</h2>",
            f"<p><small>{cpu['pages']:,} HTML pages read; CPU seconds (user + system) of the run's local "
            "processes while each stage ran, and of the units' own work; ms per page read.</small></p>",
            "<table><tr><th class=l>stage</th><th>CPU s</th><th>ms / page</th><th>units' work CPU s</th>"
            "<th>units' work ms / page</th></tr>"]
    for s in cpu["stages"]:
        rows.append(f"<tr><td class=l>{html.escape(s['stage'])}</td><td>{f(s['cpu_seconds'])}</td>"
                    f"<td>{f(s['ms_per_page'], 3)}</td><td>{f(s.get('unit_cpu_seconds'))}</td>"
                    f"<td>{f(s.get('unit_ms_per_page'), 3)}</td></tr>")
        for o in s.get("ops") or ():  # the fused ops' own share of the units' work
            rows.append(f"<tr><td class=l>&nbsp;&nbsp;{html.escape(o['op'])}</td><td></td><td></td>"
                        f"<td>{f(o['cpu_seconds'])}</td><td>{f(o.get('ms_per_page'), 3)}</td></tr>")
    rows.append(f"<tr><th class=l>all stages</th><th>{f(cpu['cpu_seconds'])}</th><th>{f(cpu['ms_per_page'], 3)}</th>"
                f"<th>{f(cpu['unit_cpu_seconds'])}</th><th></th></tr>")
    per = 1000.0 / cpu["pages"] if cpu.get("pages") else None
    for key, label in (("start_cpu_seconds", "before the stages: Ray's start"),
                       ("finish_cpu_seconds", "after them: the dataset's writers")):
        if cpu.get(key) is not None:  # what a run pays once, outside every stage
            rows.append(f"<tr><td class=l>{label}</td><td>{f(cpu[key])}</td>"
                        f"<td>{f(cpu[key] * per if per else None, 3)}</td><td></td><td></td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def fit_fixed_marginal(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(fixed, marginal) of the least-squares line ``cpu = fixed + marginal * size`` through ``points``
    ((size, cpu seconds) of runs of the same plan at several sizes): the CPU a stage pays whatever its size
    (process and model start-up, Ray, per-unit files) and its steady-state CPU per item."""
    if len({x for x, _ in points}) < 2:
        raise ValueError("fitting fixed and marginal costs needs runs of at least two sizes")
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope
