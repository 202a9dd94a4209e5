"""Per-stage CPU time in stats.json and the report (pipeline.cpu)."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline.cpu import StageClock, cpu_html, cpu_summary, process_tree_cpu
from tests.pipeline.test_run import OFFLINE, sample_warc


def test_process_tree_cpu_counts_a_child_process():
    """A child's CPU time counts (reaped: through os.times' children fields)."""
    burn = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"
    with StageClock() as clock:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert clock.cpu_seconds >= 0.25
    assert process_tree_cpu() >= clock.cpu_seconds


def test_cpu_summary_per_page_and_totals():
    timings = [{"stage": "00-extract", "seconds": 3.0, "cpu_seconds": 2.0, "unit_cpu_seconds": 1.5},
               {"stage": "01-dedup_url", "seconds": 1.0, "cpu_seconds": 0.5}]
    s = cpu_summary(timings, 1000)
    assert s["pages"] == 1000 and s["cpu_seconds"] == 2.5 and s["unit_cpu_seconds"] == 1.5
    assert s["ms_per_page"] == 2.5 and s["pages_per_cpu_second"] == 400.0
    assert s["stages"][0] == {"stage": "00-extract", "cpu_seconds": 2.0, "ms_per_page": 2.0,
                              "unit_cpu_seconds": 1.5, "unit_ms_per_page": 1.5}
    assert "unit_cpu_seconds" not in s["stages"][1]  # a decision has no units
    html = cpu_html({"cpu": s})
    assert "CPU time by stage" in html and "01-dedup_url" in html and "2.500" in html
    assert cpu_summary([], 0)["ms_per_page"] is None and cpu_html({}) == ""


def test_sample_run_records_cpu_per_stage_and_a_resume_keeps_the_units_cpu(tmp_path):
    from pipeline.run import run

    out = tmp_path / "out"
    stats = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    cpu = stats["cpu"]
    assert cpu["pages"] == stats["read"]["html_records"] > 0
    assert [s["stage"] for s in cpu["stages"]] == [t["stage"] for t in stats["timings"]]
    first = cpu["stages"][0]
    assert first["stage"].startswith("00-extract") and first["unit_cpu_seconds"] > 0
    # inline (no Ray) the stage's process-tree time holds its units' work
    for s in cpu["stages"]:
        assert s["cpu_seconds"] >= 0 and s["ms_per_page"] is not None
        if "unit_cpu_seconds" in s:
            assert s["cpu_seconds"] >= s["unit_cpu_seconds"] - 0.01
    assert cpu["cpu_seconds"] > 0 and cpu["finish_cpu_seconds"] > 0
    assert "CPU time by stage" in (out / "report.html").read_text()
    assert json.loads((out / "stats.json").read_text())["cpu"] == cpu
    # a resume finds every unit done: their CPU seconds come from the markers, not measured again
    (out / "stats.json").unlink()
    again = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    units_then = [s.get("unit_cpu_seconds") for s in cpu["stages"]]
    assert [s.get("unit_cpu_seconds") for s in again["cpu"]["stages"]] == units_then
