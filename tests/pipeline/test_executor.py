"""The unit-stage executor: which units a stage runs again."""

from __future__ import annotations

from pathlib import Path

import pytest

from obelics import storage
from pipeline import executor


def _fn(docs_in, ctx):
    return [], [{"unit": ctx["unit"]}]


def test_done_units_come_from_one_listing_and_only_the_missing_units_rerun(tmp_path, monkeypatch):
    units = {f"u{i:02d}": None for i in range(12)}
    executor.run_unit_stage("00-x", tmp_path, None, units, _fn, {}, use_ray=False)
    assert executor.done_units(str(tmp_path / "00-x"), units) == set(units)
    for u in ("u03", "u07"):  # killed before their markers: outputs may be there, markers not
        Path(executor.unit_paths(str(tmp_path / "00-x"), u)[1]).unlink()
    assert executor.done_units(str(tmp_path / "00-x"), units) == set(units) - {"u03", "u07"}

    ran, exists = [], []
    real_run, real_exists = executor._run_unit, storage.exists
    monkeypatch.setattr(executor, "_run_unit", lambda stage, sdir, prev, u, *a, **k: ran.append(u) or
                        real_run(stage, sdir, prev, u, *a, **k))
    monkeypatch.setattr(storage, "exists", lambda p: exists.append(p) or real_exists(p))
    executor.run_unit_stage("00-x", tmp_path, None, units, _fn, {}, use_ray=False)
    assert ran == ["u03", "u07"]
    assert len(exists) < len(units)  # no existence check a unit (one listing instead)
    assert executor.done_units(str(tmp_path / "00-x"), units) == set(units)


def _stats_fn(docs_in, ctx):
    return [], [{"stage": "x", "unit": ctx["unit"]}]


def _resume_two_missing(tmp_path, use_ray: bool):
    units = {f"u{i:02d}": None for i in range(12)}
    sdir = str(tmp_path / "00-x")
    executor.run_unit_stage("00-x", tmp_path, None, units, _stats_fn, {}, use_ray=use_ray)
    for u in ("u03", "u07"):
        Path(executor.unit_paths(sdir, u)[1]).unlink()
    return units, sdir


def test_a_resumed_stage_reads_its_done_markers_in_tasks_of_many_units(tmp_path, monkeypatch):
    units, sdir = _resume_two_missing(tmp_path, use_ray=False)
    monkeypatch.setattr(executor, "MARKERS_PER_TASK", 4)
    calls = []
    real = executor._read_markers
    monkeypatch.setattr(executor, "_read_markers", lambda s, us, w: calls.append(list(us)) or real(s, us, w))
    got: list = []
    summary = executor.run_unit_stage("00-x", tmp_path, None, units, _stats_fn, {}, use_ray=False,
                                      on_stats=got.extend)
    done = [u for u in sorted(units) if u not in ("u03", "u07")]
    assert calls == [done[0:4], done[4:8], done[8:10]]  # 10 done units: 3 reads, not one a unit
    assert [s["unit"] for s in got] == sorted(units)  # every unit's stats, in unit order
    assert summary["unit_cpu_seconds"] >= 0


@pytest.mark.slow
def test_on_ray_the_driver_reads_no_unit_marker_on_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from pipeline.shuffle import ensure_ray

    ensure_ray(num_cpus=2)
    units, sdir = _resume_two_missing(tmp_path, use_ray=True)
    expected = [storage.read_json(executor.unit_paths(sdir, u)[1])["stats"] for u in sorted(units)
                if u not in ("u03", "u07")]
    reads = []
    real = storage.read_json
    monkeypatch.setattr(storage, "read_json", lambda p: reads.append(p) or real(p))  # this process only
    got: list = []
    executor.run_unit_stage("00-x", tmp_path, None, units, _stats_fn, {}, use_ray=True, on_stats=got.append)
    assert not [p for p in reads if str(p).endswith(".stats.json")]  # read by Ray tasks, not the driver
    assert [s[0]["unit"] for s in got] == sorted(units)
    assert [s for s in got if s[0]["unit"] not in ("u03", "u07")] == expected
