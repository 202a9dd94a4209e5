"""The unit-stage executor: which units a stage runs again."""

from __future__ import annotations

from pathlib import Path

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
