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
