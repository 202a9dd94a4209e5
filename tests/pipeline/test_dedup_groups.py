"""How a global pass groups the units' files into map tasks (pipeline.dedup.file_groups)."""

from pipeline import dedup as dd


def _files(tmp_path, sizes):
    paths = []
    for i, n in enumerate(sizes):
        p = tmp_path / f"u{i}.parquet"
        p.write_bytes(b"x" * n)
        paths.append(str(p))
    return paths


def test_groups_spread_over_the_cpus_of_a_small_run(tmp_path, monkeypatch):
    monkeypatch.setattr(dd, "MIN_GROUP_BYTES", 100)
    paths = _files(tmp_path, [300, 300, 300, 300])
    assert dd.file_groups(paths) == [paths]  # one CPU: up to READ_BLOCK_BYTES a group
    assert dd.file_groups(paths, cpus=2) == [paths[:2], paths[2:]]
    assert dd.file_groups(paths, cpus=4) == [[p] for p in paths]
    assert dd.file_groups(paths, cpus=64) == [[p] for p in paths]  # a file is never split
    monkeypatch.setattr(dd, "MIN_GROUP_BYTES", 1000)  # but a task reads at least MIN_GROUP_BYTES
    assert dd.file_groups(paths, cpus=4) == [paths[:3], paths[3:]]
    monkeypatch.setattr(dd, "READ_BLOCK_BYTES", 500)  # and at most READ_BLOCK_BYTES, whatever the CPUs
    assert dd.file_groups(paths, cpus=2) == [[p] for p in paths]
    assert dd.file_groups(paths, max_bytes=700, cpus=4) == [paths[:2], paths[2:]]  # given: taken as is


def test_backend_cpus():
    from pipeline.shuffle import LocalBackend

    assert dd.backend_cpus(LocalBackend()) == 1


def test_each_unit_is_sized_once_per_decision_by_the_survey(tmp_path, monkeypatch):
    """A decision reads each unit's size and footer once, in survey tasks: its shuffles and its routing
    group the files and size the partitions from that (the driver made a request per unit each time)."""
    from collections import Counter

    from filters.dedup.config import dedup_config
    from pipeline import shuffle as sh
    from pipeline.dedup import decide
    from tests.pipeline.test_dedup_ray import _corpus, _write_units

    units = _write_units(_corpus(), tmp_path / "prev", 3)
    sizes, tasks = Counter(), []
    real_size, real_survey = sh.file_size, dd._survey_task
    monkeypatch.setattr(sh, "file_size", lambda p: sizes.update([p]) or real_size(p))
    monkeypatch.setattr(dd, "_survey_task", lambda paths: tasks.append(len(paths)) or real_survey(paths))
    monkeypatch.setattr(dd, "SURVEY_FILES", 2)
    for name in ("url", "minhash"):  # MinHash: two shuffles and the routing
        sizes.clear()
        tasks.clear()
        (tmp_path / name).mkdir()
        decide(name, str(tmp_path / "prev"), units, {"profile": dedup_config("default"),
                                                     "decision_dir": str(tmp_path / name)})
        assert sorted(sizes.values()) == [1, 1, 1] and tasks == [2, 1]
    inputs = dd.survey(sh.LocalBackend(), [str(tmp_path / "prev" / f"{u}.parquet") for u in units])
    assert inputs == [str(tmp_path / "prev" / f"{u}.parquet") for u in units]
    assert inputs.rows == dd.num_rows(list(inputs)) == len(_corpus()) and dd.num_rows(inputs) == inputs.rows
    assert dd.file_groups(inputs) == dd.file_groups(list(inputs))
