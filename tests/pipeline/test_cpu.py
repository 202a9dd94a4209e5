"""Per-stage CPU time in stats.json and the report (pipeline.cpu)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pipeline.cpu import StageClock, cpu_html, cpu_summary, op_clock, process_tree_cpu, sum_ops
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


def test_op_clock_and_sum_ops():
    """An op's own CPU and its inputs; units' ops summed per op in the first unit's op order."""
    from obelics.document import WebDocument

    docs = [WebDocument(texts=["a", None], images=[None, "http://x/1.jpg"], metadata=[None, None]),
            WebDocument(texts=[None, None], images=["http://x/2.jpg", "http://x/3.jpg"], metadata=[None, None])]
    took = op_clock("nsfw", docs)
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    rec = took()["op_cpu"]
    assert rec["op"] == "nsfw" and rec["cpu_seconds"] >= 0.04 and (rec["documents"], rec["images"]) == (2, 3)
    assert op_clock("extract", "unit.warc.gz")()["op_cpu"]["documents"] is None  # a source, not documents
    units = [[{"op": "extract", "cpu_seconds": 1.25, "documents": None, "images": None},
              {"op": "text_filters", "cpu_seconds": 0.5, "documents": 10, "images": 4}],
             [{"op": "extract", "cpu_seconds": 0.75, "documents": None, "images": None},
              {"op": "text_filters", "cpu_seconds": 0.25, "documents": 6, "images": 0}]]
    assert sum_ops(units) == [{"op": "extract", "cpu_seconds": 2.0, "documents": None, "images": None},
                              {"op": "text_filters", "cpu_seconds": 0.75, "documents": 16, "images": 4}]
    s = cpu_summary([{"stage": "00-x", "cpu_seconds": 3.0, "unit_cpu_seconds": 2.9, "ops": sum_ops(units)}], 100)
    assert s["stages"][0]["ops"][0]["ms_per_page"] == 20.0
    assert "&nbsp;&nbsp;text_filters" in cpu_html({"cpu": s})
    assert "Ray's start" not in cpu_html({"cpu": s})  # a run's parts outside the stages: rows when recorded
    html = cpu_html({"cpu": dict(s, start_cpu_seconds=1.5, finish_cpu_seconds=0.25)})
    assert "Ray's start</td><td>1.50</td><td>15.000</td>" in html and "writers</td><td>0.25</td><td>2.500</td>" in html


def test_sample_run_records_cpu_per_stage_and_a_resume_keeps_the_units_cpu(tmp_path):
    from pipeline.run import run

    out = tmp_path / "out"
    stats = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    cpu = stats["cpu"]
    assert cpu["pages"] == stats["read"]["html_records"] > 0
    assert [s["stage"] for s in cpu["stages"]] == [t["stage"] for t in stats["timings"]]
    first = cpu["stages"][0]
    assert first["stage"].startswith("00-extract") and first["unit_cpu_seconds"] > 0
    # the fused ops' own time, inside their units' time, with what each was given
    assert [o["op"] for o in first["ops"]] == ["extract", "url_ban", "text_filters"]
    assert first["ops"][0]["documents"] is None and first["ops"][1]["documents"] > 0
    assert first["ops"][2]["documents"] <= first["ops"][1]["documents"]
    for s in cpu["stages"]:
        if "unit_cpu_seconds" in s:
            assert 0 < sum(o["cpu_seconds"] for o in s["ops"]) <= s["unit_cpu_seconds"] + 0.01
    # inline (no Ray) the stage's process-tree time holds its units' work; os.times (the process tree)
    # counts in 10 ms ticks, read at the stage's start and end, process_time (the units) to the nanosecond
    for s in cpu["stages"]:
        assert s["cpu_seconds"] >= 0 and s["ms_per_page"] is not None
        if "unit_cpu_seconds" in s:
            assert s["cpu_seconds"] >= s["unit_cpu_seconds"] - 0.02
    assert cpu["cpu_seconds"] > 0 and cpu["finish_cpu_seconds"] > 0 and cpu["report_cpu_seconds"] > 0
    # what runs once outside the stages, timed: Ray's start (none inline), the writers, the report
    assert cpu["start_seconds"] >= 0 and cpu["start_cpu_seconds"] >= 0
    assert cpu["finish_seconds"] > 0 and cpu["report_seconds"] > 0
    assert "CPU time by stage" in (out / "report.html").read_text()
    assert "after them: the dataset's writers" in (out / "report.html").read_text()
    assert json.loads((out / "stats.json").read_text())["cpu"] == cpu
    # a resume finds every unit done: their CPU seconds come from the markers, not measured again
    (out / "stats.json").unlink()
    again = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    units_then = [s.get("unit_cpu_seconds") for s in cpu["stages"]]
    assert [s.get("unit_cpu_seconds") for s in again["cpu"]["stages"]] == units_then
    assert [s.get("ops") for s in again["cpu"]["stages"]] == [s.get("ops") for s in cpu["stages"]]


def test_fit_fixed_marginal():
    from pipeline.cpu import fit_fixed_marginal

    fixed, per = fit_fixed_marginal([(1000, 5.0 + 1000 * 0.003), (4000, 5.0 + 4000 * 0.003)])
    assert abs(fixed - 5.0) < 1e-9 and abs(per - 0.003) < 1e-12
    fixed, per = fit_fixed_marginal([(0, 1.0), (10, 2.0), (20, 3.5)])  # least squares through three runs
    assert abs(per - 0.125) < 1e-12 and abs(fixed - (2.1666666 - 0.125 * 10)) < 1e-6
    with pytest.raises(ValueError, match="two sizes"):
        fit_fixed_marginal([(10, 1.0), (10, 1.2)])


def test_process_tree_cpu_sees_a_few_milliseconds():
    """This process's own CPU to the nanosecond (os.times' 10 ms ticks read a 2 ms step as 0, mostly)."""
    c0, t0 = process_tree_cpu(), time.process_time()
    while time.process_time() - t0 < 0.002:
        pass
    assert process_tree_cpu() - c0 >= 0.0019
