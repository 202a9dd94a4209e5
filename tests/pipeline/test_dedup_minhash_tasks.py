"""The MinHash decision in tasks (pipeline.dedup.minhash_decision, pipeline.components): connected components
of partitioned edge files equal an in-memory union-find, the greedy removal per component equals the pure
in-memory pass (the oracle) on many components, chains, ties in recency and components spread over units and
snapshots, on the local backend and on Ray, and what reaches the driver does not grow with the nodes."""


import numpy as np
import pyarrow as pa
import pytest

from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from filters.dedup.union_find import connected_components
from tests.filters.dedup_helpers import make_doc
from tests.pipeline.recording_backend import RecordingBackend
from tests.pipeline.test_dedup_ray import _removed, _write_units, ray_local  # noqa: F401 - the fixture


def _edge_index(tmp_path, x, y, K, files=3):
    """Undirected edges (x, y) written as ``files`` edge files partitioned by u % K, and their index."""
    from pipeline.components import write_edges
    from pipeline.rounds import IndexBuilder

    b = IndexBuilder()
    for i, sl in enumerate(np.array_split(np.arange(len(x)), files)):
        b.add(i, *write_edges(x[sl], y[sl], K, str(tmp_path / f"e{i}.arrow")))
    return b.build()


def _graph(rng):
    """A random sparse graph, a long path (many steps), a star and a few isolated edges, as uint64 ids."""
    ids = np.unique(rng.integers(1, 1 << 62, 700, dtype=np.uint64))[:600]
    ids = ids[rng.permutation(len(ids))]
    a = [rng.integers(0, 200, 150), np.arange(200, 399), np.full(60, 450), np.arange(520, 560, 2)]
    b = [rng.integers(0, 200, 150), np.arange(201, 400), np.arange(460, 520), np.arange(521, 561, 2)]
    a, b = np.concatenate(a), np.concatenate(b)
    keep = a != b
    return ids[a[keep]], ids[b[keep]]


@pytest.mark.parametrize("K,multi,spill", [(1, False, False), (4, False, False), (7, True, False), (1, False, True),
                                           (4, False, True), (7, True, True)])
def test_star_components_equal_an_in_memory_union_find(tmp_path, K, multi, spill, monkeypatch):
    """``spill``: every step's partition over STEP_BYTES, so every step runs spilled (_step_spilled)."""
    from pipeline import components
    from pipeline.components import EDGE_SCHEMA, read_rows, star_components, star_labels, star_labels_of
    from pipeline.rounds import plan_shuffle
    from pipeline.shuffle import LocalBackend

    if spill:
        monkeypatch.setattr(components, "STEP_BYTES", 16)
        monkeypatch.setattr(components, "SPILL_RANGES", 8)

    x, y = _graph(np.random.default_rng(K))
    plan = plan_shuffle(K, K, 2, 1) if multi else plan_shuffle(K, K, 64, 100_000)
    assert plan.multi == multi
    stars, steps = star_components(LocalBackend(), _edge_index(tmp_path, x, y, K), K, plan, str(tmp_path / "cc"))
    assert steps >= 3  # the path needs several steps
    got = {}
    for g in range(len(stars)):
        nodes, labels = star_labels(read_rows(stars.group(g), EDGE_SCHEMA))
        assert (nodes % np.uint64(K) == stars.keys[g]).all()  # each node's label is in its own partition
        streamed = star_labels_of(stars.group(g))  # what the label task runs: a record batch at a time
        assert np.array_equal(streamed[0], nodes) and np.array_equal(streamed[1], labels)
        got.update(zip(nodes.tolist(), labels.tolist()))
    ids = np.unique(np.concatenate([x, y]))
    comp = connected_components(len(ids), np.searchsorted(ids, x), np.searchsorted(ids, y))
    assert got == dict(zip(ids.tolist(), ids[comp].tolist()))  # the label is the component's smallest id


@pytest.mark.parametrize("large", [True, False])
@pytest.mark.parametrize("multi", [False, True])
def test_a_spilled_step_writes_the_in_memory_steps_rows(tmp_path, monkeypatch, large, multi):
    """A step's partition too large for memory (a hub, repeated rows) spilled by v range writes the same
    rows to each partition (in another order) and the same counts as the step in memory."""
    from collections import Counter

    from pipeline import components
    from pipeline.components import read_batches

    rng = np.random.default_rng(int(large) + 2 * int(multi))
    K = 5
    x, y = _graph(rng)
    ids = np.unique(np.concatenate([x, y]))
    x, y = np.concatenate([x, np.full(len(ids) - 1, ids[-1]), x[:40]]), np.concatenate([y, ids[:-1], y[:40]])
    locs = _edge_index(tmp_path, x, y, 1).group(0)  # every row in one partition, some twice
    bounds = np.array([0, 2, 4]) if multi else None

    def rows(name):
        (path, labels), = outs[name]
        t = read_batches([(path, list(range(len(labels))))])
        part = t["_part"].to_numpy() if multi else np.repeat(labels, [b.num_rows for b in t.to_batches()])
        return Counter(zip(part.tolist(), t["u"].to_numpy().tolist(), t["v"].to_numpy().tolist()))

    outs, counts = {}, {}
    for name, limit in (("memory", 1 << 40), ("spilled", 64)):
        monkeypatch.setattr(components, "STEP_BYTES", limit)
        monkeypatch.setattr(components, "SPILL_RANGES", 16)
        outs[name], counts[name] = components._step_task(locs, large, K, str(tmp_path / f"{name}.arrow"), bounds)
    assert counts["memory"] == counts["spilled"] and counts["memory"]["edges"] > 0
    assert rows("memory") == rows("spilled")


def test_star_labels_of_a_node_split_over_batches(tmp_path):
    """A star's centre with its rows spread over several files and record batches (and repeated rows): the
    labels read a batch at a time equal the whole partition's."""
    from pipeline.components import star_labels, star_labels_of

    rng = np.random.default_rng(3)
    leaves = np.unique(rng.integers(10, 1 << 40, 500).astype(np.uint64))
    u = np.concatenate([np.full(len(leaves), 5), leaves, rng.choice(leaves, 50), [7, 3]]).astype(np.uint64)
    v = np.concatenate([leaves, np.full(len(leaves), 5), np.full(50, 5), [3, 7]]).astype(np.uint64)
    order = rng.permutation(len(u))
    u, v = u[order], v[order]
    locs = []
    for i, sl in enumerate(np.array_split(np.arange(len(u)), 3)):
        path = str(tmp_path / f"s{i}.arrow")
        t = pa.table({"u": pa.array(u[sl], pa.uint64()), "v": pa.array(v[sl], pa.uint64())})
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, t.schema) as w:
            w.write_table(t, max_chunksize=97)
        locs.append((path, list(range(-(-len(sl) // 97)))))
    want = star_labels(pa.table({"u": pa.array(u, pa.uint64()), "v": pa.array(v, pa.uint64())}))
    got = star_labels_of(locs)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[1][np.searchsorted(got[0], np.uint64(7))] == 3 and (got[1][got[0] > 7] == 5).all()


def _label_task_in_memory(star_locs, node_locs, edge_locs, K, node_path, edge_path, bounds):
    """The label task before it read the star rows and the edges a record batch at a time (the oracle)."""
    from pipeline.components import EDGE_SCHEMA, read_rows, star_labels, write_partitioned
    from pipeline.dedup import _NONE, NODE_SCHEMA

    nodes, labels = star_labels(read_rows(star_locs, EDGE_SCHEMA))
    n = read_rows(node_locs, NODE_SCHEMA)
    h = n["h"].to_numpy()
    pos = np.minimum(np.searchsorted(nodes, h), max(len(nodes) - 1, 0))
    hit = (nodes[pos] == h) if len(nodes) else np.zeros(len(h), bool)
    n = n.filter(pa.array(hit))
    lab = labels[pos[hit]]
    rows = pa.table({"label": pa.array(lab, pa.uint64()), **{c: n[c] for c in NODE_SCHEMA.names}})
    part = (lab % np.uint64(K)).astype(np.int64)
    out_nodes = write_partitioned(rows, part, node_path, bounds) if rows.num_rows else _NONE
    e = read_rows(edge_locs, EDGE_SCHEMA)
    u, v = e["u"].to_numpy(), e["v"].to_numpy()
    sel = u < v
    u, v = u[sel], v[sel]
    el = labels[np.searchsorted(nodes, u)] if len(u) else np.zeros(0, np.uint64)
    out_edges = write_partitioned(pa.table({"x": pa.array(u, pa.uint64()), "y": pa.array(v, pa.uint64())}),
                                  (el % np.uint64(K)).astype(np.int64), edge_path, bounds) if len(u) else _NONE
    return [out_nodes, out_edges], {"nodes": len(np.unique(lab)) if len(lab) else 0}


@pytest.mark.parametrize("K,multi", [(1, False), (5, False), (5, True)])
def test_label_task_equals_the_in_memory_one(tmp_path, K, multi):
    """The label task reading the star rows and the edges a batch at a time writes the rows, batches and
    counts of the in-memory one, on each partition of a graph with a hub (a node on every component edge)."""
    from pipeline.components import read_batches, star_components
    from pipeline.dedup import NODE_SCHEMA, _label_task
    from pipeline.rounds import plan_shuffle
    from pipeline.shuffle import LocalBackend

    rng = np.random.default_rng(K)
    x, y = _graph(rng)
    ids = np.unique(np.concatenate([x, y]))
    x, y = np.concatenate([x, np.full(len(ids) - 1, ids[-1])]), np.concatenate([y, ids[:-1]])  # the hub
    plan = plan_shuffle(K, K, 2, 1) if multi else plan_shuffle(K, K, 64, 100_000)
    edges = _edge_index(tmp_path, x, y, K)
    stars, _ = star_components(LocalBackend(), edges, K, plan, str(tmp_path / "cc"))
    bounds = plan.top if multi else None
    node_rows = pa.table({"h": pa.array(np.repeat(ids, 2), pa.uint64()),  # each node in two files
                          "doc_id": [f"d{i}" for i in np.repeat(ids, 2)], "rec": ["r"] * (2 * len(ids)),
                          "_file": pa.array(np.tile([0, 1], len(ids)), pa.int64())}, schema=NODE_SCHEMA)
    for g in range(len(stars)):
        q = int(stars.keys[g])
        mine = node_rows.filter(pa.array(node_rows["h"].to_numpy() % np.uint64(K) == q))
        path = str(tmp_path / f"nodes-{q}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, mine.schema) as w:
            w.write_table(mine, max_chunksize=50)
        node_locs = [(path, list(range(-(-mine.num_rows // 50))))]
        res = []
        for name, task in (("want", _label_task_in_memory), ("got", _label_task)):
            outs, counts = task(stars.group(g), node_locs, edges.get(q), K, str(tmp_path / f"{name}-n{q}.arrow"),
                                str(tmp_path / f"{name}-e{q}.arrow"), bounds)
            res.append(([(read_batches([(p, list(range(len(lab))))]).to_pydict() if p else None, list(lab))
                         for p, lab in outs], counts))
        assert res[0] == res[1]
        assert res[1][0][1][0] is not None  # every partition has edges (the hub's)


def _words(rng, n):
    return rng.choice([f"t{i}" for i in range(20000)], n).tolist()


def _cluster_docs(n_clusters: int, seed: int = 3):
    """Near-duplicate clusters of four shapes, their members spread over units (the caller's round robin)
    and over two snapshots (WARC paths of 2021 and 2023):
    - a chain A~B, B~C, A!~C (windows of one text shifted by 35 words: Jaccard ~0.84 between neighbours,
      ~0.70 between the ends), its three orders of recency in turn;
    - a star of four lightly edited copies;
    - copies in one WARC with one date (ties in recency: with ``warc_filename`` recency only the doc_id
      breaks them);
    - a pair and an unrelated document."""
    rng = np.random.default_rng(seed)
    docs = []
    for c in range(n_clusters):
        kind = c % 4
        base = _words(rng, 480)
        if kind == 0:
            texts = [base[0:400], base[35:435], base[70:470]]
            dates = [["2021-01-01", "2022-01-01", "2023-01-01"], ["2023-01-01", "2021-01-01", "2022-01-01"],
                     ["2022-01-01", "2023-01-01", "2021-01-01"]][(c // 4) % 3]
        elif kind == 1:
            texts = []
            for k in range(4):
                w = list(base[:400])
                for e in rng.integers(0, 400, 3):
                    w[e] = f"e{c}x{k}"
                texts.append(w)
            dates = [f"202{k}-06-01" for k in range(4)]
        elif kind == 2:
            texts = [base[:400]] * 3
            dates = ["2022-03-01"] * 3
        else:
            texts = [base[:400], base[:399] + ["end"], _words(rng, 300)]
            dates = ["2021-05-05", "2023-05-05", "2022-05-05"]
        for k, (t, d) in enumerate(zip(texts, dates)):
            snap = "CC-MAIN-2023-06" if (c + k) % 2 else "CC-MAIN-2021-04"
            warc = f"CC-MAIN-2022-05/w{c}.warc.gz" if kind == 2 else f"{snap}/w{c}-{k}.warc.gz"
            docs.append(make_doc(f"https://s{c}-{k}.org/p", [], texts=[" ".join(t)], warc=warc, date=d,
                                 doc_id=f"c{c:03d}-{k}"))
    return docs


def _decide_minhash(docs, cfg, tmp_path, backend, units=5):
    from pipeline.dedup import dedup_units

    names = _write_units(docs, tmp_path / "in", units)
    _, decisions, stats = dedup_units(tmp_path / "in", names, cfg, tmp_path / "work", passes=["minhash"],
                                      ctx={"backend": backend})
    return _removed(decisions), stats


CASES = [("default", ["dedup.num_partitions=3"]),
         ("default", ["dedup.recency=warc_filename", "dedup.num_partitions=2", "dedup.docs_per_partition=7"]),
         ("default", ["dedup.minhash.verify=signature", "dedup.num_partitions=5"]),
         ("default", ["dedup.minhash.verify=none", "dedup.num_partitions=4"]),
         ("default", ["dedup.num_partitions=2", "dedup.docs_per_partition=5", "dedup.shuffle_fan_in=2",
                      "dedup.shuffle_single_round_max=1"])]


@pytest.mark.parametrize("profile,overrides", CASES)
def test_minhash_in_tasks_equals_the_in_memory_pass(profile, overrides, tmp_path):
    from pipeline.shuffle import LocalBackend

    cfg = dedup_config(profile, overrides)
    docs = _cluster_docs(24)
    expected, _ = run_passes(docs, cfg, ["minhash"])
    want = expected.removed_ids()
    assert len(want) > 20
    got, _ = _decide_minhash(docs, cfg, tmp_path, LocalBackend())
    assert got == want
    if cfg.minhash.verify == "exact":
        if cfg.recency == "capture_date":  # a chain whose newest member is its end C (cluster 0: A 2021,
            # B 2022, C 2023): C removes B, A stays (connected components would remove A too)
            assert "c000-1" in got and "c000-0" not in got and "c000-2" not in got
        # one WARC, one date: the copy with the largest doc_id is kept whatever the recency mode
        assert {"c002-0", "c002-1"} <= set(got) and "c002-2" not in got


def test_minhash_in_tasks_on_ray_equals_the_in_memory_pass(ray_local, tmp_path):  # noqa: F811 - the fixture
    from pipeline.shuffle import RayBackend

    cfg = dedup_config("default", ["dedup.num_partitions=2", "dedup.docs_per_partition=9"])
    docs = _cluster_docs(16, seed=5)
    expected, want_stats = run_passes(docs, cfg, ["minhash"])
    got, stats = _decide_minhash(docs, cfg, tmp_path, RayBackend(), units=4)
    assert got == expected.removed_ids() and len(got) > 10
    assert stats[0].as_dict()["dropped"] == want_stats[0].as_dict()["dropped"]


def test_the_driver_holds_no_per_node_or_per_edge_arrays(tmp_path):
    """Four times the near-duplicate clusters (nodes, edges, removals), the same partitions and units: what
    is put or returned to the driver stays the same size (indexes and counts, O(partitions x files))."""
    from pipeline.dedup import decide

    cfg = dedup_config("default", ["dedup.num_partitions=4", "dedup.docs_per_partition=1000000"])
    seen = {}
    for n in (8, 32):
        docs = _cluster_docs(n, seed=11)
        units = _write_units(docs, tmp_path / f"in{n}", 4)
        rec = RecordingBackend()
        (tmp_path / f"d{n}").mkdir()
        d = decide("minhash", str(tmp_path / f"in{n}"), units,
                   {"profile": cfg, "decision_dir": str(tmp_path / f"d{n}"), "backend": rec})
        removed = sum(v for k, v in d["stats"][0]["dropped"].get("document", {}).items())
        seen[n] = (max(rec.sizes), len(rec.sizes), removed)
    (big8, calls8, rm8), (big32, calls32, rm32) = seen[8], seen[32]
    assert rm32 >= 3 * rm8 > 0
    assert calls32 <= calls8 + 8  # tasks follow the partitions and files, not the clusters
    assert big32 <= big8 + 256  # no result or broadcast grows with the nodes (a doc_id list would: ~20 bytes each)


def test_a_component_larger_than_a_partition_is_decided_in_one_task(tmp_path, monkeypatch):
    """40 edited copies of one story, spread over every unit and over partitions of 5 documents: the component
    is not split; one greedy task holds all of it and decides as the in-memory pass (the most recent copy
    is kept)."""
    import pipeline.dedup as dd
    from pipeline.components import read_rows
    from pipeline.shuffle import LocalBackend

    held = []
    real = dd._greedy_task
    monkeypatch.setattr(dd, "_greedy_task", lambda nodes, *a: held.append(
        len(set(read_rows(nodes, dd.LABELLED_SCHEMA)["h"].to_pylist()))) or real(nodes, *a))
    rng = np.random.default_rng(2)
    base = _words(rng, 400)
    docs = []
    for k in range(40):
        w = list(base)
        w[int(rng.integers(0, 400))] = f"edit{k}"
        docs.append(make_doc(f"https://big{k}.org/", [], texts=[" ".join(w)], date=f"20{10 + k // 12:02d}-0{1 + k % 9}-01",
                             warc=f"CC-MAIN-20{10 + k // 12:02d}-1{k % 9}/w.warc.gz", doc_id=f"big{k:02d}"))
    docs += _cluster_docs(8, seed=9)
    cfg = dedup_config("default", ["dedup.num_partitions=2", "dedup.docs_per_partition=5"])
    expected, _ = run_passes(docs, cfg, ["minhash"])
    got, _ = _decide_minhash(docs, cfg, tmp_path, LocalBackend())
    assert got == expected.removed_ids()
    assert sum(1 for d in got if d.startswith("big")) == 39
    assert max(held) >= 40 and len(held) > 1  # the component in one task, the other clusters in others


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_feature_rows_carry_only_what_the_confirmation_reads(verify, monkeypatch):
    """The exact confirmation reads the shingle sets, the signature one the signatures: the other is not
    computed, its lists empty."""
    from filters.dedup.minhash import MinHasher
    from pipeline.dedup import FEATURE_SCHEMA, _feature_rows

    mh = dedup_config("default", [f"dedup.minhash.verify={verify}"]).minhash
    texts = [["one two three four five six seven", None, "eight nine"], ["a b c"], ["x y z w v u t s"]]
    t = pa.table({"doc_id": ["d0", "d1", "d2"], "texts": texts})
    calls = []
    sign = MinHasher.signatures_flat
    monkeypatch.setattr(MinHasher, "signatures_flat", lambda self, *a: calls.append(1) or sign(self, *a))
    rows = _feature_rows(t, mh, pa.array(["d0", "d2"]), np.array([0 * 3 + 1, 1 * 3 + 0, 1 * 3 + 2]), 3)
    assert rows.num_rows == 3 and rows["_part"].to_pylist() == [1, 0, 2]
    assert rows.drop_columns(["_part"]).schema.equals(FEATURE_SCHEMA)
    h = MinHasher.from_config(mh)
    sh, sig = [len(x) for x in rows["sh"].to_pylist()], [len(x) for x in rows["sig"].to_pylist()]
    if verify == "exact":
        assert not calls and sig == [0, 0, 0]
        assert rows["sh"].to_pylist()[0] == np.unique(h.shingles("one two three four five six seven\n\neight nine")).tolist()
    else:
        assert calls and sh == [0, 0, 0] and sig == [h.num_perm] * 3
