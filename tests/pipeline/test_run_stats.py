"""The run's stats flow: each unit stage's markers are read at most once per run (on object storage, a
GET per unit per stage), and the funnel summed as the stages end equals the one summed from the markers."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from obelics import storage
from tests.pipeline.test_run import OFFLINE, sample_warc

NO_RAY = OFFLINE + ["run.use_ray=false"]
VOLATILE = ("timings", "cpu", "summary")  # seconds and CPU time differ between two runs


def _inputs(tmp_path, n: int = 3) -> list[str]:
    """``n`` copies of the sample WARC under other names: ``n`` units, with duplicates across them."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"copy{i}.warc.gz"
        shutil.copyfile(sample_warc(), p)
        paths.append(str(p))
    return paths


@pytest.fixture
def marker_reads(monkeypatch):
    """Counts of JSON reads by kind of file: a unit's marker, a decision's marker, anything else."""
    reads: Counter = Counter()
    real = storage.read_json

    def counting(path):
        name = str(path)
        kind = "unit" if name.endswith(".stats.json") else "decision" if name.endswith("decision.json") else name
        reads[kind] += 1
        return real(path)

    monkeypatch.setattr(storage, "read_json", counting)
    return reads


def _stable(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k not in VOLATILE}


def _from_markers(out, stats: dict, inputs: list[str]) -> tuple:
    """The funnel summed the old way: every marker read again at the end, in stage then unit order."""
    from pipeline.executor import collect_unit_stats
    from pipeline.finish import merge_unit_stats
    from pipeline.sources import input_name

    work = storage.join(str(out), "work")
    stages = [t["stage"] for t in stats["timings"]]
    units = sorted(input_name(i) for i in inputs)
    merger, flow = merge_unit_stats(collect_unit_stats(work, stages, units))
    return merger.result(), flow


def test_unit_markers_are_read_once_per_run_and_the_funnel_is_unchanged(tmp_path, marker_reads):
    from pipeline.run import run

    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    stats = run("default", out, inputs, overrides=NO_RAY)
    assert stats["summary"]["units"] == 3
    # a fresh run reads no marker: the units' stats come back with their results, the decisions' in memory
    assert marker_reads["unit"] == 0 and marker_reads["decision"] == 0
    unit_stages = [t["stage"] for t in stats["timings"] if "unit_cpu_seconds" in t]
    decisions = [t["stage"] for t in stats["timings"] if "unit_cpu_seconds" not in t]
    assert len(unit_stages) >= 2 and decisions

    merged, flow = _from_markers(out, stats, inputs)  # what the finish got when it read the markers itself
    for key in ("stages", "read", "metrics", "thresholds"):
        assert stats.get(key) == merged.get(key), key
    assert stats["flow"] == flow
    saved = json.loads((out / "stats.json").read_text())
    assert any(s["stage"].startswith("dedup.url") and s.get("dropped") for s in saved["stages"])

    # a resume that finds every stage done reads each unit's marker once per stage, each decision once
    marker_reads.clear()
    (out / "stats.json").unlink()
    again = run("default", out, inputs, overrides=NO_RAY)
    assert marker_reads["unit"] == 3 * len(unit_stages)
    assert marker_reads["decision"] == len(decisions)
    assert _stable(again) == _stable(stats)
    assert [s.get("unit_cpu_seconds") for s in again["cpu"]["stages"]] == \
        [s.get("unit_cpu_seconds") for s in stats["cpu"]["stages"]]


def test_a_partly_done_stage_reads_only_its_finished_units_markers(tmp_path, marker_reads):
    """One unit's work of the last unit stage lost: the rerun redoes it, reads the other two units'
    markers of that stage once, and gives the same funnel."""
    from pipeline.run import run

    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    stats = run("default", out, inputs, overrides=NO_RAY)
    unit_stages = [t["stage"] for t in stats["timings"] if "unit_cpu_seconds" in t]
    last = unit_stages[-1]
    (out / "stats.json").unlink()
    from pipeline.sources import input_name

    (out / "work" / last / f"{input_name(inputs[1])}.stats.json").unlink()
    marker_reads.clear()
    again = run("default", out, inputs, overrides=NO_RAY)
    assert marker_reads["unit"] == 3 * (len(unit_stages) - 1) + 2
    assert _stable(again) == _stable(stats)


@pytest.mark.slow
def test_on_ray_the_units_stats_arrive_in_unit_order(tmp_path, marker_reads):
    """Units run as Ray tasks finish in any order; the stats are summed in unit order all the same (the
    same funnel as inline), without reading a marker."""
    from pipeline.run import run

    inputs = _inputs(tmp_path)
    inline = run("default", tmp_path / "inline", inputs, overrides=NO_RAY)
    marker_reads.clear()
    try:
        on_ray = run("default", tmp_path / "ray", inputs, overrides=OFFLINE + ["run.use_ray=true"])
    finally:
        import ray

        ray.shutdown()
    assert marker_reads["unit"] == 0 and marker_reads["decision"] == 0
    assert _stable(on_ray) == _stable(inline)
