"""pipeline.shuffle: the passes' file operations."""

import numpy as np
import pyarrow as pa

from pipeline import shuffle as fs
from pipeline.rounds import GroupedWriter


def test_partition_files_are_written_and_read_without_arrow_thread_pool(tmp_path, monkeypatch):
    """The passes' IPC files (many small record batches) are (de)compressed on the task's own thread: the
    writer's and every reader's options say so, and the rows round-trip lz4-compressed."""
    seen = {"write": [], "read": []}
    new_file, open_file = pa.ipc.new_file, pa.ipc.open_file

    def spy_new(sink, schema, *, options=None, **kw):
        seen["write"].append(options)
        return new_file(sink, schema, options=options, **kw)

    def spy_open(source, *a, options=None, **kw):
        seen["read"].append(options)
        return open_file(source, *a, options=options, **kw)

    monkeypatch.setattr(pa.ipc, "new_file", spy_new)
    monkeypatch.setattr(pa.ipc, "open_file", spy_open)
    u = np.arange(1000, dtype=np.uint64)
    out = GroupedWriter(str(tmp_path / "p.arrow"), 1 << 20)
    out.add(pa.table({"u": u}), (u % 7).astype(np.int64))
    path, labels = out.close()
    assert len(seen["write"]) == 1 and seen["write"][0] is not None
    assert seen["write"][0].use_threads is False and seen["write"][0].compression == "lz4"

    got = [b for b in fs.iter_ipc_batches(path, range(len(labels)))]
    _, got2 = fs.read_ipc_batches(path, range(len(labels)))
    assert len(seen["read"]) == 2
    assert all(o is not None and o.use_threads is False for o in seen["read"])
    for batches in (got, got2):
        rows = np.concatenate([b.column("u").to_numpy() for b in batches])
        assert sorted(rows.tolist()) == u.tolist()
        for b, lab in zip(batches, labels):
            assert (b.column("u").to_numpy() % 7 == lab).all()
    with pa.OSFile(path, "rb") as f:  # still compressed: the batches' body is well under the raw rows
        assert f.size() < u.nbytes
