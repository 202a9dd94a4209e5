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
"""

from __future__ import annotations

import os
import time


def process_tree_cpu() -> float:
    """CPU seconds used so far by this process, its reaped children and its living descendants.

    psutil (a dependency) reads the descendants; a descendant that exited without being reaped by this
    process takes its time with it, so this is a lower bound on what Ray's processes used.
    """
    import psutil

    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
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
    rows.append(f"<tr><th class=l>all stages</th><th>{f(cpu['cpu_seconds'])}</th><th>{f(cpu['ms_per_page'], 3)}</th>"
                f"<th>{f(cpu['unit_cpu_seconds'])}</th><th></th></tr></table>")
    return "\n".join(rows)
