"""Atomic writes (``obelics.storage``, local paths): an output appears whole under its final name or not at
all; the toolkit's own writers go through it."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from obelics.parquet import ParquetDocumentWriter, write_table_atomic
from obelics.storage import AtomicFile, atomic_writer, join, write_json_atomic, write_text_atomic
from pipeline.markers import TMP_GLOB


def test_commit_renames_and_creates_the_folder(tmp_path):
    target = join(tmp_path, "a", "b", "x.bin")
    f = AtomicFile(target)
    f.write(b"hello")
    assert not (tmp_path / "a" / "b" / "x.bin").exists()  # invisible until committed
    assert [p.name for p in (tmp_path / "a" / "b").glob(TMP_GLOB)] != []
    assert f.commit() == target
    assert (tmp_path / "a" / "b" / "x.bin").read_bytes() == b"hello"
    assert list(tmp_path.rglob(TMP_GLOB)) == []


def test_an_error_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_json_and_text_bytes(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"b": "é", "a": [1]})
    assert (tmp_path / "s.json").read_bytes() == '{\n  "a": [\n    1\n  ],\n  "b": "é"\n}\n'.encode()
    write_text_atomic(tmp_path / "t.txt", "ü\n")
    assert (tmp_path / "t.txt").read_bytes() == "ü\n".encode()


def test_parquet_writers_go_through_it(tmp_path):
    table = pa.table({"a": [1, 2, 3]})
    write_table_atomic(tmp_path / "t.parquet", table)
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    with pytest.raises(RuntimeError), ParquetDocumentWriter(tmp_path / "d.parquet"):
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]
