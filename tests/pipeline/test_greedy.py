"""The bounded-memory greedy task (pipeline.greedy, pipeline.dedup._greedy_task) writes the same removed rows,
in the same order and with the same counts, as the in-memory task it replaces (kept here as the oracle: the
component partition read whole, ranked by recency_rank, filters.dedup.minhash.greedy_removals), on random
graphs with rows spread over files and batches, a node on several rows (files, band partitions), recency
ties, chains, stars, and budgets small enough that every spill has many ranges."""

import numpy as np
import pyarrow as pa
import pytest

from filters.dedup.common import hash64
from pipeline import greedy
from pipeline.components import read_batches
from pipeline.dedup import CAND_SCHEMA, LABELLED_SCHEMA, _greedy_task


def _write(path, t, chunks):
    """``t`` as an IPC file of ``chunks`` record batches; its locs (every batch, in order)."""
    bounds = np.linspace(0, t.num_rows, chunks + 1).astype(int)
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, t.schema) as w:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            w.write_batch(t.slice(lo, hi - lo).combine_chunks().to_batches()[0] if hi > lo else
                          pa.RecordBatch.from_pylist([], t.schema))
    return [(str(path), list(range(chunks)))]


def _partition(rng, tmp_path, n, density, ties, chain, star, files):
    """A component partition's labelled node rows and edge rows as the label task writes them, in 1-3
    files each of 1-4 batches: several components, some nodes on several rows (files, and the same file
    twice), recency drawn from few values (ties broken by doc_id), a chain A~B~C and a star."""
    ids = [f"doc-{i:05d}-{rng.integers(1 << 30)}" for i in range(n)]
    h = hash64(ids)
    recs = [f"2023-0{rng.integers(1, 1 + ties)}\x00crawl-data/CC-MAIN-2023-0{rng.integers(1, 4)}" for _ in range(n)]
    m = max(1, int(n * density))
    comp = rng.integers(0, 3, n)  # three components' worth of edges (edges only within a component)
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    a, b = a[comp[a] == comp[b]], b[comp[a] == comp[b]]
    if chain and n >= 3:
        a, b = np.concatenate([a, [0, 1]]), np.concatenate([b, [1, 2]])
    if star and n >= 5:
        a, b = np.concatenate([a, np.full(n // 2, n - 1)]), np.concatenate([b, np.arange(n // 2)])
    keep = a != b
    a, b = a[keep], b[keep]
    on_edge = np.unique(np.concatenate([a, b]))
    rows = [on_edge, on_edge[rng.random(len(on_edge)) < 0.3], on_edge[rng.random(len(on_edge)) < 0.1]]
    node = np.concatenate(rows)
    node = node[rng.permutation(len(node))]
    fid = rng.integers(0, files, len(node))
    rec = [recs[i] for i in node]
    for j in np.flatnonzero(rng.random(len(node)) < 0.05):  # a later row of a node with another recency
        rec[j] = f"2022-0{rng.integers(1, 9)}"
    nodes = pa.table({"label": pa.array(np.zeros(len(node), np.uint64)), "h": pa.array(h[node], pa.uint64()),
                      "doc_id": [ids[i] for i in node], "rec": rec, "_file": pa.array(fid, pa.int64())},
                     schema=LABELLED_SCHEMA)
    x, y = np.minimum(h[a], h[b]), np.maximum(h[a], h[b])
    edges = pa.table({"x": pa.array(x, pa.uint64()), "y": pa.array(y, pa.uint64())}, schema=CAND_SCHEMA)
    node_locs, edge_locs = [], []
    for name, t, locs in (("nodes", nodes, node_locs), ("edges", edges, edge_locs)):
        parts = rng.integers(1, 4)
        for k, sl in enumerate(np.array_split(np.arange(t.num_rows), parts)):
            locs += _write(tmp_path / f"{name}-{k}.arrow", t.take(pa.array(sl, pa.int64())), int(rng.integers(1, 5)))
    return node_locs, edge_locs


def _result(r):
    c, path, parts, counts = r
    rows = read_batches([(path, list(range(len(parts))))]).to_pydict() if path else None
    return c, rows, list(parts), counts


@pytest.mark.parametrize("seed", range(30))
def test_greedy_task_equals_the_in_memory_task(seed, tmp_path, monkeypatch):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30) if seed % 5 == 4 else rng.integers(30, 600))
    node_locs, edge_locs = _partition(rng, tmp_path, n, [0.5, 1.5, 4, 16][seed % 4], ties=1 + seed % 3,
                                      chain=seed % 2 == 0, star=seed % 3 == 0, files=int(rng.integers(1, 9)))
    bounds = np.array([0, 3, 5]) if seed % 4 == 1 else None
    want = _result(greedy.greedy_partition_in_memory(node_locs, edge_locs, 7, str(tmp_path / "want.arrow"), bounds))
    monkeypatch.setattr(greedy, "SMALL_BYTES", 0)  # the spilled passes, not the small partitions' in-memory path
    if seed % 2:  # tiny budgets: many key ranges, edge windows of one range, removed rows in many ranges
        monkeypatch.setattr(greedy, "SPILL_BYTES", 64)
        monkeypatch.setattr(greedy, "BATCH_ROWS", 37)
        monkeypatch.setattr(greedy, "SAMPLE", 50)
        monkeypatch.setattr(greedy, "EDGE_RANGES", 1 + seed % 50)
    got = _result(_greedy_task(node_locs, edge_locs, 7, str(tmp_path / "got.arrow"), bounds))
    assert got == want
    assert want[1] is not None or seed % 5 == 4  # the larger graphs do remove documents


@pytest.mark.parametrize("seed", range(12))
def test_small_partitions_in_memory_equal_the_spilled_passes(seed, tmp_path, monkeypatch):
    """A partition under SMALL_BYTES is decided in memory, without a spill; the same file, labels and counts
    as the spilled passes (budgets large and tiny)."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 30) if seed % 4 == 3 else rng.integers(30, 400))
    node_locs, edge_locs = _partition(rng, tmp_path, n, [0.5, 1.5, 4, 16][seed % 4], ties=1 + seed % 3,
                                      chain=seed % 2 == 0, star=seed % 3 == 0, files=int(rng.integers(1, 9)))
    bounds = np.array([0, 3, 5]) if seed % 3 == 1 else None
    spilled = []
    real = greedy.dense_ranks
    monkeypatch.setattr(greedy, "dense_ranks", lambda *a: spilled.append(1) or real(*a))
    fast = _result(_greedy_task(node_locs, edge_locs, 7, str(tmp_path / "fast.arrow"), bounds))
    assert not spilled
    monkeypatch.setattr(greedy, "SMALL_BYTES", 0)
    if seed % 2:
        monkeypatch.setattr(greedy, "SPILL_BYTES", 64)
        monkeypatch.setattr(greedy, "BATCH_ROWS", 37)
    slow = _result(_greedy_task(node_locs, edge_locs, 7, str(tmp_path / "slow.arrow"), bounds))
    assert spilled
    assert fast == slow
    assert fast[1] is not None or seed % 4 == 3


def test_a_partition_over_the_small_bytes_is_spilled(tmp_path, monkeypatch):
    """Rows over SMALL_BYTES (or over the budget) take the spilled passes."""
    rng = np.random.default_rng(5)
    node_locs, edge_locs = _partition(rng, tmp_path, 300, 4, ties=2, chain=True, star=True, files=3)
    calls = []
    real = greedy.dense_ranks
    monkeypatch.setattr(greedy, "dense_ranks", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(greedy, "SMALL_BYTES", 4096)
    greedy.greedy_partition(node_locs, edge_locs, str(tmp_path / "a.arrow"))
    assert calls == [1]
    monkeypatch.setattr(greedy, "SMALL_BYTES", 8 << 20)
    greedy.greedy_partition(node_locs, edge_locs, str(tmp_path / "b.arrow"), budget=4096)
    assert calls == [1, 1]
    greedy.greedy_partition(node_locs, edge_locs, str(tmp_path / "c.arrow"))
    assert calls == [1, 1]


def test_spills_are_cut_into_many_ranges(tmp_path):
    """With a tiny budget the keys, edges and removed rows are each spilled in several ranges, and the
    temporary folder is gone afterwards."""
    rng = np.random.default_rng(1)
    node_locs, edge_locs = _partition(rng, tmp_path, 400, 4, ties=2, chain=True, star=True, files=5)
    seen = []

    def spy(cls):
        real = cls.read

        def read(self, lo, hi):
            seen.append((self.path.rsplit("/", 1)[1], lo))
            return real(self, lo, hi)
        return read

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(greedy._Spill, "read", spy(greedy._Spill))
        mp.setattr(greedy._PairSpill, "read", spy(greedy._PairSpill))
        path, labels, removed = greedy.greedy_partition(node_locs, edge_locs, str(tmp_path / "out.arrow"),
                                                        budget=2048, tmp_dir=str(tmp))
    assert removed > 0
    for name in ("keys.arrow", "edges.bin", "removed.arrow"):
        assert len({lo for n, lo in seen if n == name}) > 3, name
    assert list(tmp.iterdir()) == []


def test_an_edge_to_a_missing_node_is_an_error(tmp_path):
    rng = np.random.default_rng(2)
    node_locs, _ = _partition(rng, tmp_path, 50, 2, ties=1, chain=True, star=False, files=2)
    edges = pa.table({"x": pa.array([1], pa.uint64()), "y": pa.array([2], pa.uint64())}, schema=CAND_SCHEMA)
    for small in (0, 8 << 20):  # the spilled passes and the small partitions' path
        with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match="not a node"):
            mp.setattr(greedy, "SMALL_BYTES", small)
            greedy.greedy_partition(node_locs, _write(tmp_path / "bad.arrow", edges, 1), str(tmp_path / "o.arrow"))
