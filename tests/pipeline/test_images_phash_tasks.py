"""pHash clusters found by tasks (pipeline.images.phash_tasks) equal the one-pass reference
(filters.dedup.phash.phash_clusters), locally and on Ray; the image-URL decision reads each unit's canonical
URLs from its joined rows, and neither the driver nor a broadcast holds the whole mapping."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup.config import DedupConfig, dedup_config
from filters.dedup.phash import phash_clusters
from pipeline.images.phash_tasks import given_hashes, phash_canonical_index, read_canonical
from pipeline.shuffle import LocalBackend
from tests.pipeline.recording_backend import RecordingBackend
from tests.pipeline.test_dedup_ray import ray_local  # noqa: F401 - the fixture


def _hashes(seed: int, n: int):
    """``n`` (url, hash) pairs: near copies of a few base hashes (0-6 bits flipped: near pairs, chains across
    bands), URLs repeated (a URL hashed twice, same or other hash), some hashes None (undecodable), a few
    URLs None."""
    rng = random.Random(seed)
    base = [rng.getrandbits(64) for _ in range(n // 4 + 1)]
    urls, hashes = [], []
    for _ in range(n):
        h = rng.choice(base)
        for _ in range(rng.randrange(7)):
            h ^= 1 << rng.randrange(64)
        urls.append(None if rng.random() < 0.03 else f"http://img{rng.randrange(5)}.test/{rng.randrange(2 * n)}")
        hashes.append(None if rng.random() < 0.1 else h)
    return urls, hashes


def _clusters(backend, urls, hashes, max_distance, cfg, work, step):
    calls = [(urls[i:i + step], hashes[i:i + step]) for i in range(0, len(urls), step)]
    index, counts = phash_canonical_index(backend, given_hashes, calls, max_distance, cfg.num_partitions, cfg, work)
    return read_canonical(index), counts


@pytest.mark.parametrize("seed", range(12))
def test_tasks_equal_the_one_pass_clusters(seed, tmp_path):
    rng = random.Random(seed)
    n = rng.randrange(50, 500)
    urls, hashes = _hashes(seed, n)
    max_distance = [0, 1, 2, 4, 6, 10][seed % 6]  # 1 to 11 bands
    cfg = DedupConfig(num_partitions=rng.choice([1, 3, 7]), shuffle_fan_in=2 + seed % 3,
                      shuffle_single_round_max=4 if seed % 2 else 100_000)  # odd seeds: merge rounds
    want = phash_clusters(urls, hashes, max_distance)
    got, counts = _clusters(LocalBackend(), urls, hashes, max_distance, cfg, str(tmp_path / "w"), rng.randrange(1, 80))
    assert got == want
    assert counts["hashed"] == sum(1 for u, h in zip(urls, hashes) if u is not None and h is not None)
    if max_distance >= 2:
        assert len(want) > 10


def _rows_by_partition(index):
    from pipeline.components import read_rows
    from pipeline.images.join import CANONICAL_SCHEMA

    return {int(q): read_rows(index.get(int(q)), CANONICAL_SCHEMA).to_pylist() for q in index.keys}


@pytest.mark.parametrize("seed", range(8))
def test_a_few_images_clustered_in_the_driver_equal_the_tasks(seed, tmp_path, monkeypatch):
    """At most SMALL_IMAGES images: only the hash tasks run, and the index holds the same rows, partition by
    partition and in the same order, as the task stages' (which the one pass checks above)."""
    from pipeline.images import phash_tasks

    rng = random.Random(seed)
    urls, hashes = _hashes(seed, rng.randrange(50, 500))
    max_distance = [0, 1, 2, 4, 6, 10][seed % 6]
    cfg = DedupConfig(num_partitions=rng.choice([1, 3, 7]), shuffle_fan_in=2 + seed % 3,
                      shuffle_single_round_max=4 if seed % 2 else 100_000)
    step = rng.randrange(1, 80)
    calls = [(urls[i:i + step], hashes[i:i + step]) for i in range(0, len(urls), step)]
    tasks, tcounts = phash_canonical_index(LocalBackend(), given_hashes, calls, max_distance, cfg.num_partitions, cfg,
                                           str(tmp_path / "tasks"))
    ran = []
    for name in ("_band_task", "_label_task", "_canonical_task", "_pick_task"):
        monkeypatch.setattr(phash_tasks, name, lambda *a, name=name: ran.append(name))
    small, scounts = phash_canonical_index(LocalBackend(), given_hashes, calls, max_distance, cfg.num_partitions,
                                           cfg, str(tmp_path / "small"), images=len(urls))
    assert not ran
    assert _rows_by_partition(small) == _rows_by_partition(tasks)
    assert read_canonical(small) == phash_clusters(urls, hashes, max_distance)
    assert (scounts["hashed"], scounts["urls"]) == (tcounts["hashed"], tcounts.get("urls", 0))
    if max_distance >= 2:
        assert len(read_canonical(small)) > 10


def test_more_images_than_small_images_run_the_tasks(tmp_path, monkeypatch):
    from pipeline.images import phash_tasks

    urls, hashes = _hashes(4, 300)
    cfg = DedupConfig(num_partitions=3)
    calls = [(urls[i:i + 50], hashes[i:i + 50]) for i in range(0, len(urls), 50)]
    monkeypatch.setattr(phash_tasks, "SMALL_IMAGES", 299)
    ran = []
    real = phash_tasks._band_task
    monkeypatch.setattr(phash_tasks, "_band_task", lambda *a: ran.append(1) or real(*a))
    got = phash_canonical_index(LocalBackend(), given_hashes, calls, 4, 3, cfg, str(tmp_path / "a"), images=300)[0]
    assert ran and read_canonical(got) == phash_clusters(urls, hashes, 4)
    with pytest.raises(ValueError, match="more than"):  # a count under the images hashed is a caller's bug
        phash_canonical_index(LocalBackend(), given_hashes, calls, 4, 3, cfg, str(tmp_path / "b"), images=10)


def test_bucket_order_is_the_one_pass_order(tmp_path):
    """A bucket links each member to its first and to the next (not every pair): B~D in a bucket [A, B, C, D]
    is no candidate, while in [B, A, C, D] it is. The tasks follow the calls' order, as the one pass."""
    low = 0x1234_5678
    far = [0x0F0F_0F0F, 0xF0F0_F0F0, 0x3C3C_3C3C]  # high halves > 1 bit from each other and from B's
    b = 0xAAAA_AAAA
    h = {"A": far[0] << 32 | low, "B": b << 32 | low, "C": far[1] << 32 | low, "D": (b ^ 1) << 32 | low}
    cfg = DedupConfig(num_partitions=2)
    for order in ("ABCD", "BACD"):
        urls = [f"http://x/{c}" for c in order]
        hashes = [h[c] for c in order]
        want = phash_clusters(urls, hashes, 1)
        got, _ = _clusters(LocalBackend(), urls, hashes, 1, cfg, str(tmp_path / order), 1)
        assert got == want
        assert (want == {}) if order == "ABCD" else (want == {"http://x/B": "http://x/B", "http://x/D": "http://x/B"})


def test_tasks_on_ray_equal_the_one_pass_clusters(ray_local, tmp_path):  # noqa: F811 - the fixture
    from pipeline.shuffle import RayBackend

    urls, hashes = _hashes(3, 400)
    cfg = DedupConfig(num_partitions=4, shuffle_fan_in=2, shuffle_single_round_max=4)
    got, _ = _clusters(RayBackend(), urls, hashes, 4, cfg, str(tmp_path / "w"), 37)
    want = phash_clusters(urls, hashes, 4)
    assert got == want and len(want) > 50


def test_the_driver_holds_no_url_or_hash_of_the_clusters(tmp_path):
    """4x the clustered images, the same calls and partitions: what is put or returned to the driver stays
    the same size (indexes and counts), and nothing put is a mapping."""
    cfg = DedupConfig(num_partitions=4)
    seen = {}
    for k in (2, 8):
        rng = random.Random(k)
        urls, hashes = [], []
        for i in range(800):  # groups of k near copies, the same 16 calls
            urls.append(f"http://img.test/{i:06d}/{'x' * 40}")
            hashes.append((random.Random(i // k).getrandbits(64)) ^ (1 << rng.randrange(64)) if i < 100 * k
                          else rng.getrandbits(64))
        rec = RecordingBackend()
        got, _ = _clusters(rec, urls, hashes, 4, cfg, str(tmp_path / f"w{k}"), 50)
        assert got == phash_clusters(urls, hashes, 4)
        assert not any(isinstance(p, dict) for p in rec.puts)
        seen[k] = (len(got), max(rec.sizes))
    assert seen[8][0] >= 3 * seen[2][0] > 0
    assert seen[8][1] <= seen[2][1] + 256  # no result grows with the clustered URLs


# -- the image-URL decision: each unit's canonical URLs from its joined rows ---------------------------------
def _docs(n_pictures: int):
    """Each picture under 3 URLs, each URL on 2 pages (6 pages a picture: more than max_count 4 only counted
    as one image), and URLs seen once."""
    from tests.filters.dedup_helpers import make_doc

    docs, canonical = [], {}
    for p in range(n_pictures):
        names = [f"https://cdn{j}.test/pic{p}.jpg" for j in range(3)]
        canonical.update({u: names[0] for u in names})
        for j in range(6):
            k = len(docs)
            docs.append(make_doc(f"https://s{k}.org/p", [names[j % 3], f"https://img/{k}.jpg"], texts=[f"page {k}"],
                                 doc_id=f"d{k:05d}"))
    return docs, canonical


def _unit_rows(docs, units, canonical, unit_dir):
    """Each unit's joined rows file as the image-table decision writes it (only its URLs; ``canonical``)."""
    unit_dir.mkdir()
    for i, u in enumerate(units):
        urls = sorted({x for d in docs[i::len(units)] for x in d.images if x})
        pq.write_table(pa.table({"url": urls, "canonical": [canonical.get(x) for x in urls]}),
                       unit_dir / f"{u}.parquet")


@pytest.mark.parametrize("count", ["documents", "occurrences"])
def test_image_url_pass_reads_each_units_canonical_urls(count, tmp_path):
    """The decision with ``phash_unit_dir`` (the units' joined rows) and each unit's apply equal the in-memory
    pass given the whole mapping; nothing put is a mapping, and what reaches the driver does not grow with it."""
    from filters.dedup.image_url import image_url_dedup
    from pipeline.dedup import apply, decide, unit_canonical
    from tests.pipeline.test_dedup_ray import _write_units

    cfg = dedup_config("default", [f"dedup.image_url.count={count}", "dedup.image_url.max_count=4",
                                   "dedup.num_partitions=3", "dedup.docs_per_partition=1000000"])
    seen = {}
    for n in (4, 40):
        docs, canonical = _docs(n)
        want = image_url_dedup(docs, cfg, canonical=canonical)
        units = _write_units(docs, tmp_path / f"in{n}", 4)
        _unit_rows(docs, units, canonical, tmp_path / f"rows{n}")
        (tmp_path / f"d{n}").mkdir()
        rec = RecordingBackend()
        decision = decide("image_url", str(tmp_path / f"in{n}"), units,
                          {"profile": cfg, "decision_dir": str(tmp_path / f"d{n}"), "backend": rec,
                           "phash_unit_dir": str(tmp_path / f"rows{n}")})
        assert decision["stats"][0]["in"]["frequent_image_url"] == n  # each picture once, not its 3 URLs
        assert not any(isinstance(p, dict) for p in rec.puts)
        seen[n] = (max(rec.sizes), len(rec.sizes))
        got, removed = [], 0
        for u in units:
            t = pq.read_table(tmp_path / f"in{n}" / f"{u}.parquet")
            out, st = apply("image_url", t, decision, {"profile": cfg, "unit": u,
                                                        "phash_canonical": unit_canonical(str(tmp_path / f"rows{n}" / f"{u}.parquet"))})
            got.append(out)
            removed += sum(st.as_dict()["dropped"].get("image", {}).values())
        got_t = pa.concat_tables(got).sort_by("doc_id")
        want_t = want.table.sort_by("doc_id")
        assert got_t["images"].to_pylist() == want_t["images"].to_pylist()
        assert removed == sum(want.stats.as_dict()["dropped"].get("image", {}).values()) == 6 * n
    assert seen[40][1] == seen[4][1] and seen[40][0] <= seen[4][0] + 64


# -- the label and canonical tasks hold a component's label, not its rows ---------------------------------------
def _ipc(path, tables):
    """``tables`` as one Arrow IPC file, a record batch each; its locs."""
    with pa.ipc.new_file(str(path), tables[0].schema) as w:
        for t in tables:
            w.write_table(t)
    return [(str(path), list(range(len(tables))))]


@pytest.mark.parametrize("merge", [False, True])
def test_canonical_task_equals_the_smallest_url_of_each_label(merge, tmp_path, monkeypatch):
    """Rows in many record batches (labels across batches, non-ASCII URLs), minima re-reduced every few
    batches: every row's canonical URL is the smallest of its label (Python's ``min``), partitioned by URL."""
    import numpy as np

    from pipeline.images import phash_tasks as pt
    from pipeline.rounds import drop_part

    monkeypatch.setattr(pt, "REDUCE_ROWS", 3, raising=False)
    rng = random.Random(merge)
    rows = [(rng.randrange(40), i, f"http://{rng.choice('aéz蛇')}{rng.randrange(10 ** 6)}/") for i in range(3000)]
    tables = [pa.table({"label": pa.array([r[0] for r in rows[k:k + 97]], pa.uint64()),
                        "id": pa.array([r[1] for r in rows[k:k + 97]], pa.uint64()),
                        "url": [r[2] for r in rows[k:k + 97]]}) for k in range(0, len(rows), 97)]
    P = 5
    bounds = np.array([0, 2], np.int64) if merge else None
    [(path, parts)], counts = pt._canonical_task(_ipc(tmp_path / "in.arrow", tables), P, str(tmp_path / "out.arrow"),
                                                 bounds)
    want = {}
    for lab, _, url in rows:
        want[lab] = min(want.get(lab, url), url)
    assert counts["components"] == len(want)
    got = []
    for g, t in zip(parts, pa.ipc.open_file(path).read_all().to_batches()):
        t = pa.Table.from_batches([t])
        q = t["_part"].to_pylist() if merge else [g] * t.num_rows
        t = drop_part(t)
        assert list(pt.url_partition(t["url"].to_pylist(), P)) == q
        got += zip(t["id"].to_pylist(), t["url"].to_pylist(), t["canonical"].to_pylist())
    assert sorted(got) == sorted((i, u, want[lab]) for lab, i, u in rows)


def _peaks(fn):
    """(Arrow's peak allocation, Python and numpy's tracemalloc peak) of ``fn()``, in bytes."""
    import tracemalloc

    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    old = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        fn()
        return pool.max_memory(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(old)


def test_one_huge_component_is_not_held_by_a_task(tmp_path, monkeypatch):
    """A component of 200,000 nodes (one blank image under as many URLs): its centre's star rows and its
    labelled rows are read a record batch at a time and written every ``FLUSH_BYTES``, so the label and the
    canonical tasks hold a few batches, not the ~12 MB of rows (the old tasks read the partition whole)."""
    import numpy as np

    from pipeline.images import phash_tasks as pt

    monkeypatch.setattr(pt, "FLUSH_BYTES", 1 << 20, raising=False)
    n, B, K = 200_000, 5_000, 16
    leaves = np.arange(1, n + 1, dtype=np.uint64)
    stars = [pa.table({"u": pa.array(np.zeros(B, np.uint64)), "v": pa.array(leaves[k:k + B])})
             for k in range(0, n, B)]  # the centre 0's row to every leaf, in partition 0
    stars += [pa.table({"v": pa.array(np.zeros(len(x), np.uint64)), "u": pa.array(x)}).select(["u", "v"])
              for x in (leaves[k:k + B][leaves[k:k + B] % K == 0] for k in range(0, n, B))]  # its leaves' rows
    nodes = [pa.table({"id": pa.array(leaves[k:k + B][leaves[k:k + B] % K == 0]),
                       "url": [f"http://img.test/{int(x):09d}/{'x' * 30}" for x in leaves[k:k + B] if x % K == 0]})
             for k in range(0, n, B)]
    star_locs, node_locs = _ipc(tmp_path / "stars.arrow", stars), _ipc(tmp_path / "nodes.arrow", nodes)
    labelled = [pa.table({"label": pa.array(np.zeros(B, np.uint64)), "id": pa.array(leaves[k:k + B]),
                          "url": [f"http://img.test/{int(x):09d}/{'x' * 30}" for x in leaves[k:k + B]]})
                for k in range(0, n, B)]
    lab_locs = _ipc(tmp_path / "labelled.arrow", labelled)
    rows_bytes = sum(t.nbytes for t in labelled)
    assert rows_bytes > 10e6

    def label():
        [(path, _)], counts = pt._label_task(star_locs, node_locs, K, str(tmp_path / "l.arrow"), None)
        assert counts["nodes"] == n // K

    def canonical():
        [(path, _)], counts = pt._canonical_task(lab_locs, 64, str(tmp_path / "c.arrow"), None)
        assert counts["components"] == 1

    for fn in (canonical, label):
        arrow, py = _peaks(fn)
        assert arrow < rows_bytes / 4 and py < rows_bytes / 4, (fn.__name__, arrow, py, rows_bytes)


# -- the band task: a bucket over the budget is sorted out of core and its edges streamed ------------------
def _edge_set(out):
    """The undirected edges of a band task's output, as a set of (min, max)."""
    from pipeline.components import EDGE_SCHEMA, read_rows

    [(path, parts)] = out
    if path is None:
        return set()
    t = read_rows([(path, list(range(len(parts))))], EDGE_SCHEMA)
    u, v = t["u"].to_pylist(), t["v"].to_pylist()
    assert set(zip(u, v)) == set(zip(v, u))  # both directions
    return {(min(a, b), max(a, b)) for a, b in zip(u, v)}


def _band_rows(seed: int, n: int, buckets: int, huge: int):
    """Band rows in shuffled record batches: ``huge`` rows in one bucket (hashes 0-3 bits from a blank),
    ``n`` more over ``buckets`` keys (random hashes: heads far from their members, chain edges), ties (an id
    in several buckets with its one hash)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n + huge, dtype=np.uint64) + (np.uint64(seed) << np.uint64(32)))
    base = rng.integers(0, 1 << 62, 8, dtype=np.uint64)
    h = base[rng.integers(0, 8, n + huge)]
    flips = rng.integers(0, 64, (n + huge, 3)).astype(np.uint64)
    for j in range(3):
        h ^= np.where(rng.random(n + huge) < 0.4, np.uint64(1) << flips[:, j], np.uint64(0))
    h[:huge] = np.uint64(0) ^ np.where(rng.random(huge) < 0.5, np.uint64(1) << flips[:huge, 0], np.uint64(0))
    key = np.concatenate([np.full(huge, 7, np.uint64), rng.integers(0, buckets, n).astype(np.uint64) + np.uint64(100)])
    again = rng.integers(0, n + huge, (n + huge) // 3)  # ties: ids again under other keys
    key = np.concatenate([key, rng.integers(0, buckets, len(again)).astype(np.uint64) + np.uint64(100)])
    ids, h = np.concatenate([ids, ids[again]]), np.concatenate([h, h[again]])
    _, first = np.unique(np.stack([key, ids], 1), axis=0, return_index=True)  # a (key, id) once, as band_keys
    o = rng.permutation(first)
    t = pa.table({"key": pa.array(key[o]), "id": pa.array(ids[o]), "h": pa.array(h[o])})
    return [pa.Table.from_batches([b]) for b in t.to_batches(max_chunksize=int(rng.integers(50, 400)))]


@pytest.mark.parametrize("seed,budget", [(0, 300), (1, 700), (2, 1000), (3, 450)])
def test_spilled_band_task_equals_the_in_memory_one(seed, budget, tmp_path, monkeypatch):
    """Over the budget, the rows sorted out of core (runs, then a merge) and the bucket's edges streamed
    across chunks: the same confirmed edges as the in-memory task (several buckets, one bucket far over the
    budget, ids in several buckets), with merge-round rows (``_part``) too."""
    import numpy as np

    from pipeline.images import phash_tasks as pt

    batches = _band_rows(seed, 3000, [5, 40, 300, 1][seed], 2500)
    if seed == 2:  # merge rounds' rows carry their partition
        batches = [b.append_column("_part", pa.array(np.zeros(b.num_rows, np.int64))) for b in batches]
    locs = _ipc(tmp_path / "bands.arrow", batches)
    for d in (1, 3):
        want_out, want_c = pt._band_task(locs, d, 4, str(tmp_path / f"a{d}.arrow"), None)
        monkeypatch.setattr(pt, "BAND_ROWS", budget)
        got_out, got_c = pt._band_task(locs, d, 4, str(tmp_path / f"b{d}.arrow"), None)
        monkeypatch.undo()
        want = _edge_set(want_out)
        assert len(want) > 1000
        assert _edge_set(got_out) == want
        assert got_c["confirmed_edges"] >= want_c["confirmed_edges"]  # a pair in two buckets may come twice


@pytest.mark.parametrize("seed", range(4))
def test_tasks_with_spilled_band_tasks_equal_the_one_pass(seed, tmp_path, monkeypatch):
    from pipeline.images import phash_tasks as pt

    monkeypatch.setattr(pt, "BAND_ROWS", [50, 170, 260, 90][seed])
    urls, hashes = _hashes(seed, 400)
    blank = random.Random(seed).getrandbits(64)
    urls += [f"http://px.test/{i}" for i in range(300)]  # one hash under many URLs: a bucket over the budget
    hashes += [blank] * 300
    cfg = DedupConfig(num_partitions=[1, 3, 2, 1][seed], shuffle_fan_in=2, shuffle_single_round_max=4)
    got, _ = _clusters(LocalBackend(), urls, hashes, [2, 4, 6, 0][seed], cfg, str(tmp_path / "w"), 41)
    want = phash_clusters(urls, hashes, [2, 4, 6, 0][seed])
    assert got == want and len(want) >= 300


def test_one_huge_bucket_is_not_held_by_the_band_task(tmp_path, monkeypatch):
    """One hash under 600,000 ids (a blank image under as many URLs): one bucket, sorted out of core and its
    edges written every ``FLUSH_BYTES``; the task holds a budget of rows, not the ~14 MB of the bucket's rows nor
    its edges (the old task sorted the partition whole)."""
    import numpy as np

    from pipeline.images import phash_tasks as pt

    monkeypatch.setattr(pt, "FLUSH_BYTES", 1 << 18)
    monkeypatch.setattr(pt, "BAND_ROWS", 10_000, raising=False)
    n, B = 600_000, 10_000
    ids = np.random.default_rng(0).permutation(np.arange(n, dtype=np.uint64))
    tables = [pa.table({"key": pa.array(np.full(B, 5, np.uint64)), "id": pa.array(ids[k:k + B]),
                        "h": pa.array(np.zeros(B, np.uint64))}) for k in range(0, n, B)]
    locs = _ipc(tmp_path / "bands.arrow", tables)
    rows_bytes = sum(t.nbytes for t in tables)

    def band():
        out, counts = pt._band_task(locs, 2, 8, str(tmp_path / "e.arrow"), None)
        assert counts["confirmed_edges"] == 2 * n - 3  # star and chain edges of equal hashes

    arrow, py = _peaks(band)
    assert arrow < rows_bytes / 4 and py < rows_bytes / 4, (arrow, py, rows_bytes)
