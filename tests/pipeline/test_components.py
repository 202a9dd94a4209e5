"""pipeline.components' spilled step on pHash-style node ids (``call << 32 | position``: small numbers whose top
bits are 0): the spilled step writes the in-memory step's rows and counts, its ranges share the rows evenly
(a hub's rows included, as ``u`` and as ``v``), and the components still equal a union-find.
(The components on 64-bit hash ids, MinHash's: tests/pipeline/test_dedup_minhash_tasks.py.)"""

from collections import Counter

import numpy as np
import pytest


def _phash_ids(n: int, per_call: int = 512) -> np.ndarray:
    """``n`` node ids as the pHash hash tasks number images: call index << 32 | position in the call."""
    i = np.arange(n, dtype=np.uint64)
    return (i // np.uint64(per_call)) << np.uint64(32) | (i % np.uint64(per_call))


def _graph(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A blank image's component as the band task links it (every member to the bucket's first and to the
    next), a few random edges and a separate small path, in pHash ids; edges given twice (as two bands)."""
    rng = np.random.default_rng(seed)
    ids = _phash_ids(n + 40)
    a = [np.zeros(n - 1, np.int64), np.arange(n - 1), rng.integers(0, n, 50), np.arange(n, n + 39)]
    b = [np.arange(1, n), np.arange(1, n), rng.integers(0, n, 50), np.arange(n + 1, n + 40)]
    a, b = np.concatenate(a), np.concatenate(b)
    keep = a != b
    x, y = ids[a[keep]], ids[b[keep]]
    return np.concatenate([x, x[::3]]), np.concatenate([y, y[::3]])


def _edge_index(tmp_path, x, y, K, files=3):
    from pipeline.components import write_edges
    from pipeline.rounds import IndexBuilder

    b = IndexBuilder()
    for i, sl in enumerate(np.array_split(np.arange(len(x)), files)):
        b.add(i, *write_edges(x[sl], y[sl], K, str(tmp_path / f"e{i}.arrow")))
    return b.build()


def _rows(out, multi: bool) -> Counter:
    """The multiset of (partition, u, v) rows a step task wrote."""
    from pipeline.components import read_batches

    (path, labels), = out
    t = read_batches([(path, list(range(len(labels))))])
    part = t["_part"].to_numpy() if multi else np.repeat(labels, [b.num_rows for b in t.to_batches()])
    return Counter(zip(part.tolist(), t["u"].to_numpy().tolist(), t["v"].to_numpy().tolist()))


@pytest.mark.parametrize("large", [True, False])
@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("ranges,reduce", [(256, 1 << 20), (7, 3)])
def test_spilled_step_equals_the_in_memory_step_on_phash_ids(tmp_path, monkeypatch, large, multi, ranges, reduce):
    """Every row in one partition (a hub with a row per node, repeated rows), spilled with a tiny budget into
    ``ranges`` ranges (``reduce``: the per-range node extremes re-reduced every few ranges): the same rows to
    each partition and the same counts as :func:`_step` in memory."""
    from pipeline import components

    x, y = _graph(3000, int(large) + 2 * int(multi))
    locs = _edge_index(tmp_path, x, y, 1).group(0)
    K, bounds = 5, (np.array([0, 2, 4]) if multi else None)
    monkeypatch.setattr(components, "SPILL_RANGES", ranges)
    monkeypatch.setattr(components, "REDUCE_NODES", reduce)
    outs, counts = {}, {}
    for name, limit in (("memory", 1 << 40), ("spilled", 64)):
        monkeypatch.setattr(components, "STEP_BYTES", limit)
        outs[name], counts[name] = components._step_task(locs, large, K, str(tmp_path / f"{name}.arrow"), bounds)
    assert counts["memory"] == counts["spilled"] and counts["memory"]["edges"] > 0
    assert _rows(outs["memory"], multi) == _rows(outs["spilled"], multi)


def test_spilled_ranges_share_phash_ids_rows_evenly(tmp_path, monkeypatch):
    """The spilled step reads each range back whole: with pHash ids (top bits 0) and a hub holding half of the
    partition's rows (a quarter with the hub as ``u``, a quarter as ``v``), no range read holds much more
    than its share of the rows. The old cut by the top bits of ``v`` put every row in one range."""
    from pipeline import components
    from pipeline import shuffle as fs

    x, y = _graph(4000, 0)
    locs = _edge_index(tmp_path, x, y, 1).group(0)
    total = 2 * len(x)
    reads = []
    real = fs.read_ipc_batches

    def recording(path, idx):
        schema, got = real(path, idx)
        reads.append(sum(b.num_rows for b in got))
        return schema, got

    monkeypatch.setattr(fs, "read_ipc_batches", recording)
    monkeypatch.setattr(components, "STEP_BYTES", 1 << 10)
    monkeypatch.setattr(components, "SPILL_RANGES", 16)
    components._step_task(locs, True, 3, str(tmp_path / "out.arrow"), None)
    assert len(reads) == 2 * 16 and sum(reads) == 2 * total  # two passes over 16 ranges, every row in each
    assert max(reads) <= 1.5 * total / 16, sorted(reads)


def test_star_components_on_phash_ids_with_every_step_spilled(tmp_path, monkeypatch):
    """The components of a pHash-id graph with every step spilled equal a union-find's (label: smallest id)."""
    from filters.dedup.union_find import connected_components
    from pipeline import components
    from pipeline.components import star_components, star_labels_of
    from pipeline.rounds import plan_shuffle
    from pipeline.shuffle import LocalBackend

    monkeypatch.setattr(components, "STEP_BYTES", 16)
    monkeypatch.setattr(components, "SPILL_RANGES", 8)
    K = 4
    x, y = _graph(1500, 1)
    stars, steps = star_components(LocalBackend(), _edge_index(tmp_path, x, y, K), K, plan_shuffle(K, K, 64, 100_000),
                                   str(tmp_path / "cc"))
    assert steps >= 2
    got = {}
    for g in range(len(stars)):
        nodes, labels = star_labels_of(stars.group(g))
        got.update(zip(nodes.tolist(), labels.tolist()))
    ids = np.unique(np.concatenate([x, y]))
    comp = connected_components(len(ids), np.searchsorted(ids, x), np.searchsorted(ids, y))
    assert got == dict(zip(ids.tolist(), ids[comp].tolist()))
