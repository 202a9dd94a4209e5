"""pHash clusters of the downloaded images found by tasks: the driver holds file indexes and counts, never a
URL, a hash or the clusters' mapping (:func:`filters.dedup.phash.phash_clusters` did it all in the driver:
~25-30 GB at a snapshot's ~80 M images).

The same steps as :func:`~filters.dedup.phash.phash_clusters`, each a task per partition writing its output
(the chain of :func:`pipeline.dedup.minhash_decision`):

1. hash tasks (a few image-table row groups each, or any ``source`` of (urls, hashes)) write every hashed
   image's pigeonhole band rows (key, id, hash), partitioned by band key, and its (id, url) node row,
   partitioned by id. ``id`` is the image's place in the one-pass order (call index << 32 | position in the
   call's lists), so a bucket's members are ordered as in the one pass: :func:`bucket_edges` (which links
   each member to its bucket's first and to the next, not every pair) gives the same candidates;
2. band tasks: each bucket's candidate edges, confirmed by Hamming distance, written as edge rows by id;
3. :func:`pipeline.components.star_components` over the confirmed edges;
4. label tasks: each clustered node's (label, id, url), partitioned by component label (the star rows read a
   record batch at a time, :func:`pipeline.components.star_labels_of`);
5. canonical tasks: a component's canonical URL is its smallest (as the one pass), a min-reduction by label
   (:func:`component_minima`), then rows (url, canonical, id) written as they are read, partitioned by the
   URL's 64-bit hash like :func:`pipeline.images.join.wanted_urls`. A component is never split (a blank
   image under millions of URLs is one component), so neither task holds its rows: a task holds a record
   batch, its partition's distinct nodes or labels, and a write buffer of ``FLUSH_BYTES``;
6. pick tasks: one row per URL (a URL hashed twice, e.g. in two parts, keeps the mapping of its last
   occurrence in the one-pass order, as the one pass's dict does), one file per URL partition.

A run of at most :data:`SMALL_IMAGES` images (the caller's count) runs the hash tasks only, the one pass
clustering their results in the driver (:func:`_small_index`: the same rows in the same files' order).

The result is the :class:`~pipeline.rounds.Index` that :func:`pipeline.images.join.join_units` joins to the
units' rows (the ``canonical`` column of ``units/<unit>.parquet``): the same mapping as the one pass on the
same inputs. URLs are routed by their 64-bit xxh3 hash (as every global pass routes its keys); they are
compared as strings, so a hash collision only puts two URLs in one partition.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.common import hash64
from filters.dedup.config import DedupConfig
from filters.dedup.minhash import bucket_edges
from filters.dedup.phash import band_keys, within
from pipeline import shuffle as fs
from pipeline.components import (
    FLUSH_BYTES,
    read_rows,
    run_stage,
    star_components,
    star_labels_of,
    write_edges,
    write_partitioned,
)
from pipeline.images.join import CANONICAL_SCHEMA
from pipeline.rounds import GroupedWriter, Index, IndexBuilder, ShufflePlan

BAND_SCHEMA = pa.schema([("key", pa.uint64()), ("id", pa.uint64()), ("h", pa.uint64())])
NODE_SCHEMA = pa.schema([("id", pa.uint64()), ("url", pa.string())])
LABELLED_SCHEMA = pa.schema([("label", pa.uint64()), ("id", pa.uint64()), ("url", pa.string())])
CANON_ID_SCHEMA = pa.schema([("url", pa.string()), ("canonical", pa.string()), ("id", pa.uint64())])
REDUCE_ROWS = 1 << 16  # per-batch minima held before they are reduced again (component_minima)
BAND_ROWS = 1 << 18  # band rows (24 bytes each) a band task sorts in memory; more are sorted out of core
ID_BITS = 32  # an image's id: its call's index << ID_BITS | its position in the call's lists
# At most this many images (the caller's count) are clustered in the driver by the one pass (phash_clusters,
# ~1.2 KB an image: ~40 MB), its mapping written as the pick tasks write it: five task stages (bands,
# components, labels, minima, picks) cost more than the one pass below that (BENCHMARKS.md, ab17)
SMALL_IMAGES = 1 << 15
_NONE = (None, np.zeros(0, np.int64))


def _plan(maps: int, parts: int, cfg: DedupConfig) -> ShufflePlan:
    from pipeline.dedup import shuffle_plan

    return shuffle_plan(maps, parts, cfg)


def url_partition(urls: list[str], P: int) -> np.ndarray:
    """The URL partition of :mod:`pipeline.images.join` (``hash64(url) % P``)."""
    return (hash64(urls) % np.uint64(P)).astype(np.int64)


# -- 1. hashes -> band rows and node rows --------------------------------------------------------------
def _hash_task(i: int, source: Callable, args: tuple, max_distance: int, K: int, band_path: str, node_path: str,
               bounds):
    """Call ``i``: ``source(*args)`` gives (urls, hashes) (a hash None: not decoded); the band rows of each
    hashed image partitioned by ``key % K``, its node row by ``id % K``."""
    urls, hashes = source(*args)
    keep = [j for j, (u, h) in enumerate(zip(urls, hashes)) if u is not None and h is not None]
    if not keep:
        return [_NONE, _NONE], {}
    if len(urls) >= 1 << ID_BITS:
        raise ValueError(f"a pHash task hashed {len(urls)} images; at most {(1 << ID_BITS) - 1}")
    ids = (np.uint64(i) << np.uint64(ID_BITS)) | np.array(keep, np.uint64)
    hs = np.array([hashes[j] for j in keep], np.uint64)
    keys = band_keys(hs, max_distance).reshape(-1)
    nb = len(keys) // len(hs)
    bands = pa.table({"key": pa.array(keys, pa.uint64()), "id": pa.array(np.tile(ids, nb), pa.uint64()),
                      "h": pa.array(np.tile(hs, nb), pa.uint64())})
    out_bands = write_partitioned(bands, (keys % np.uint64(K)).astype(np.int64), band_path, bounds)
    nodes = pa.table({"id": pa.array(ids, pa.uint64()), "url": pa.array([urls[j] for j in keep], pa.string())})
    out_nodes = write_partitioned(nodes, (ids % np.uint64(K)).astype(np.int64), node_path, bounds)
    return [out_bands, out_nodes], {"hashed": len(keep)}


# -- 2. buckets -> confirmed edges ---------------------------------------------------------------------
def _band_task(locs, max_distance: int, K: int, out_path: str, bounds):
    """Band partition: each bucket's members in id order (the one pass's order), linked by
    :func:`bucket_edges`, kept within ``max_distance`` bits; written as edge rows by ``id % K``. A partition
    over :data:`BAND_ROWS` rows (a hash under millions of URLs is one bucket of millions of rows) is sorted
    out of core (:func:`_sorted_chunks`) and its edges streamed (:func:`_stream_edges`): the same edges."""
    batches, held = [], 0
    it = _batches(locs)
    for b in it:
        batches.append(b.select(BAND_SCHEMA.names))
        held += b.num_rows
        if held > BAND_ROWS:
            return _band_task_spilled(itertools.chain(batches, it), max_distance, K, out_path, bounds)
    t = pa.Table.from_batches(batches, BAND_SCHEMA)
    key, ids, h = t["key"].to_numpy(), t["id"].to_numpy(), t["h"].to_numpy()
    order = np.lexsort((ids, key))
    key, ids, h = key[order], ids[order], h[order]
    a, b = bucket_edges(key, np.arange(len(key)))
    n = len(a)
    if n:
        ok = within(h[a], h[b], max_distance)
        a, b = a[ok], b[ok]
    if not len(a):
        return [_NONE], {"candidate_edges": n}
    return [write_edges(ids[a], ids[b], K, out_path, bounds)], {"candidate_edges": n, "confirmed_edges": len(a)}


class _Carry:
    """The bucket :func:`_stream_edges` is in at the end of a chunk: its key, head (id, hash), last (id, hash)."""

    __slots__ = ("key", "head", "head_h", "prev", "prev_h")

    def __init__(self):
        self.key = self.head = self.head_h = self.prev = self.prev_h = None


def _stream_edges(key: np.ndarray, ids: np.ndarray, h: np.ndarray, carry: _Carry, max_distance: int):
    """:func:`bucket_edges` (head to member, neighbour to neighbour) and the Hamming check over one chunk of
    rows sorted by (key, id), continuing the bucket ``carry`` holds from the previous chunk (updated): the
    (candidates, confirmed id pairs). Pairs are unique within a bucket; a pair in two buckets comes twice."""
    n = len(key)
    if not n:
        return 0, (np.zeros(0, np.uint64), np.zeros(0, np.uint64))
    new_run = np.ones(n, bool)
    new_run[1:] = key[1:] != key[:-1]
    if carry.key is not None:
        new_run[0] = key[0] != carry.key
    starts = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1  # -1: the carried bucket
    head = np.empty(n, np.uint64)
    head_h = np.empty(n, np.uint64)
    inherited = run_id < 0
    if inherited.any():
        head[inherited], head_h[inherited] = carry.head, carry.head_h
    own = ~inherited
    head[own], head_h[own] = ids[starts][run_id[own]], h[starts][run_id[own]]
    prev = np.empty(n, np.uint64)
    prev_h = np.empty(n, np.uint64)
    prev[1:], prev_h[1:] = ids[:-1], h[:-1]
    if carry.key is not None:
        prev[0], prev_h[0] = carry.prev, carry.prev_h
    else:
        prev[0], prev_h[0] = ids[0], h[0]
    star = ~new_run & (head != ids)
    chain = ~new_run & (prev != ids) & (prev != head)
    x = np.concatenate([head[star], prev[chain]])
    xh = np.concatenate([head_h[star], prev_h[chain]])
    y = np.concatenate([ids[star], ids[chain]])
    yh = np.concatenate([h[star], h[chain]])
    ok = within(xh, yh, max_distance)
    carry.key, carry.prev, carry.prev_h = key[-1], ids[-1], h[-1]
    if run_id[-1] >= 0:
        carry.head, carry.head_h = ids[starts[-1]], h[starts[-1]]
    return len(x), (x[ok], y[ok])


def _sorted_chunks(batches: Iterator[pa.RecordBatch], budget_rows: int, folder: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The band rows ``batches`` as chunks sorted by (key, id), in that order, holding about
    ``budget_rows`` rows: runs of ``budget_rows`` rows sorted and spilled to ``folder``, then merged a block of
    each run at a time (numpy has no k-way merge: every block's rows up to the smallest of the blocks' last
    rows are sorted together and given out)."""
    import os

    runs: list[str] = []
    pending: list[pa.RecordBatch] = []
    held = 0

    def spill():
        t = pa.Table.from_batches(pending, BAND_SCHEMA).combine_chunks()
        t = t.take(pa.array(np.lexsort((t["id"].to_numpy(), t["key"].to_numpy()))))
        path = os.path.join(folder, f"run-{len(runs):05d}.arrow")
        with pa.ipc.new_file(path, BAND_SCHEMA) as w:
            for b in t.to_batches(max_chunksize=block):
                w.write_batch(b)
        runs.append(path)

    block = max(64, budget_rows // 64)  # the merge holds a block per run: up to 64 runs, under a budget
    for b in batches:
        b = b.select(BAND_SCHEMA.names)
        for off in range(0, b.num_rows, budget_rows):
            part = b.slice(off, budget_rows)
            if held + part.num_rows > budget_rows and pending:
                spill()
                pending, held = [], 0
            pending.append(part)
            held += part.num_rows
    if pending:
        spill()
        pending = []
    # the merge: each run's blocks read one at a time; (key, id) pairs are unique (an id once per band key)
    readers = [pa.ipc.open_file(pa.OSFile(p)) for p in runs]
    nxt = [0] * len(runs)
    bufs: list = [None] * len(runs)

    def load(r):
        while nxt[r] < readers[r].num_record_batches:
            b = readers[r].get_batch(nxt[r])
            nxt[r] += 1
            if b.num_rows:
                bufs[r] = tuple(b.column(c).to_numpy() for c in BAND_SCHEMA.names)
                return
        bufs[r] = None

    for r in range(len(runs)):
        load(r)
    while any(x is not None for x in bufs):
        live = [r for r in range(len(runs)) if bufs[r] is not None]
        ck, ci = min((bufs[r][0][-1], bufs[r][1][-1]) for r in live)
        parts = []
        for r in live:
            k, i, hh = bufs[r]
            lo, hi = np.searchsorted(k, ck, "left"), np.searchsorted(k, ck, "right")
            j = lo + int(np.searchsorted(i[lo:hi], ci, "right"))
            if j:
                parts.append((k[:j], i[:j], hh[:j]))
            if j == len(k):
                load(r)
            else:
                bufs[r] = (k[j:], i[j:], hh[j:])
        k, i, hh = (np.concatenate(c) for c in zip(*parts))
        o = np.lexsort((i, k))
        yield k[o], i[o], hh[o]


def _band_task_spilled(batches: Iterator[pa.RecordBatch], max_distance: int, K: int, out_path: str, bounds):
    """:func:`_band_task` over rows sorted out of core, the edges written as they are found (flushed every
    ``FLUSH_BYTES`` or 32 bytes a budget row, the smaller): a task holds about :data:`BAND_ROWS` rows whatever its largest bucket."""
    import tempfile

    out = GroupedWriter(out_path, min(FLUSH_BYTES, 32 * BAND_ROWS))  # edges: 2 rows of 16 bytes a row at most
    carry = _Carry()
    n = confirmed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="phash-band-") as folder:
            for key, ids, h in _sorted_chunks(batches, BAND_ROWS, folder):
                c, (x, y) = _stream_edges(key, ids, h, carry, max_distance)
                n += c
                confirmed += len(x)
                if len(x):
                    u, v = np.concatenate([x, y]), np.concatenate([y, x])
                    rows = pa.table({"u": pa.array(u, pa.uint64()), "v": pa.array(v, pa.uint64())})
                    part = (u % np.uint64(K)).astype(np.int64)
                    out.add_partitioned(rows, part, bounds)
        written = out.close()
    finally:
        out.abort()
    if not confirmed:
        return [_NONE], {"candidate_edges": n}
    return [written], {"candidate_edges": n, "confirmed_edges": confirmed}


# -- 4. components -> (label, id, url) -----------------------------------------------------------------
def _label_task(star_locs, node_locs, K: int, out_path: str, bounds):
    """Node partition: each clustered node's component label (the star forest's) joined to its URL, written
    by ``label % K``. The star rows are read a record batch at a time (:func:`star_labels_of`): the task holding
    a component's centre holds its partition's nodes, not a row per node of the component."""
    nodes, labels = star_labels_of(star_locs)
    n = read_rows(node_locs, NODE_SCHEMA)
    ids = n["id"].to_numpy()
    if not len(nodes) or not len(ids):
        return [_NONE], {}
    pos = np.minimum(np.searchsorted(nodes, ids), len(nodes) - 1)
    hit = nodes[pos] == ids
    lab = labels[pos[hit]]
    rows = pa.table({"label": pa.array(lab, pa.uint64()), "id": pa.array(ids[hit], pa.uint64()),
                     "url": n["url"].filter(pa.array(hit))})
    return [write_partitioned(rows, (lab % np.uint64(K)).astype(np.int64), out_path, bounds)], {"nodes": len(lab)}


# -- 5. the smallest URL of each component --------------------------------------------------------------
def _batches(locs) -> Iterator[pa.RecordBatch]:
    for path, idx in locs or ():
        for b in fs.iter_ipc_batches(path, idx):
            if b.num_rows:
                yield b


def _min_url(t: pa.Table) -> pa.Table:
    """(label, url) rows reduced to each label's smallest URL, sorted by label."""
    return t.group_by("label").aggregate([("url", "min")]).rename_columns(["label", "url"]).sort_by("label")


def component_minima(locs) -> tuple[np.ndarray, pa.Array]:
    """Each label's smallest URL over the (label, id, url) rows ``locs`` names, read a record batch at a time
    (a min-reduction: it holds the partition's distinct labels, not a component's rows; Arrow compares
    strings by their UTF-8 bytes: code point order, as Python's ``min``): (sorted labels, their URLs)."""
    acc: list[pa.Table] = []
    rows = held = 0
    for b in _batches(locs):
        acc.append(_min_url(pa.Table.from_batches([b]).select(["label", "url"])))
        rows += acc[-1].num_rows
        if rows > 2 * held + REDUCE_ROWS:  # re-reduce: what is held stays O(distinct labels)
            acc = [_min_url(pa.concat_tables(acc))]
            rows = held = acc[0].num_rows
    if not acc:
        return np.zeros(0, np.uint64), pa.array([], pa.string())
    t = _min_url(pa.concat_tables(acc)) if len(acc) > 1 else acc[0]
    return t["label"].to_numpy(), t["url"].combine_chunks()


def _canonical_task(locs, P: int, out_path: str, bounds):
    """Label partition: every node's (url, canonical url, id), canonical the smallest URL of its component;
    written by URL partition. Two passes over the rows a record batch at a time (the minima, then the rows
    written as they are read, flushed every ``FLUSH_BYTES``): a component under millions of URLs is one
    label, not its rows, in memory."""
    labels, canon = component_minima(locs)
    if not len(labels):
        return [_NONE], {}
    out = GroupedWriter(out_path, FLUSH_BYTES)
    try:
        for b in _batches(locs):
            url = b.column("url")
            rows = pa.table({"url": url, "canonical": canon.take(pa.array(np.searchsorted(labels, b.column("label").to_numpy()))),
                             "id": b.column("id")}, schema=CANON_ID_SCHEMA)
            part = url_partition(url.to_pylist(), P)
            out.add_partitioned(rows, part, bounds)
        written = out.close()
    finally:
        out.abort()
    return [written], {"components": len(labels)}


# -- 6. one row per URL --------------------------------------------------------------------------------
def _pick_task(locs, q: int, out_path: str):
    """URL partition ``q``: one (url, canonical) row per URL, that of its largest id (the one pass's dict
    keeps a URL's last occurrence); one IPC file, one batch."""
    t = read_rows(locs, CANON_ID_SCHEMA).sort_by([("url", "ascending"), ("id", "descending")])
    if not t.num_rows:
        return [_NONE], {}
    urls = t["url"].combine_chunks()
    first = np.ones(len(urls), bool)
    if len(urls) > 1:
        first[1:] = pc.not_equal(urls[1:], urls[:-1]).to_numpy(zero_copy_only=False)
    rows = t.filter(pa.array(first)).select(CANONICAL_SCHEMA.names).cast(CANONICAL_SCHEMA)
    return [write_partitioned(rows, np.full(rows.num_rows, q, np.int64), out_path)], {"urls": rows.num_rows}


def phash_canonical_index(backend, source: Callable, calls: list[tuple], max_distance: int, P: int,
                          cfg: DedupConfig, work: str, images: int | None = None) -> tuple[Index, Counter]:
    """{url: canonical url} of the clustered images as (url, canonical) rows partitioned by URL hash into
    ``P`` partitions (the :class:`Index` :func:`pipeline.images.join.join_units` takes), and counts
    (hashed images, candidate and confirmed edges, clustered URLs). ``source(*call)`` gives each call's
    (urls, hashes); the calls' order is the one pass's order. Files under ``work`` (the result's too: the
    caller removes it once joined). ``images``: at most this many images are hashed; at most
    :data:`SMALL_IMAGES`, they are clustered in the driver (:func:`_small_index`: the same rows)."""
    fs.make_dirs(work)
    if images is not None and images <= SMALL_IMAGES:
        return _small_index(backend, source, calls, max_distance, P, work, images)
    counts: Counter = Counter()
    plan = _plan(P, P, cfg)  # P partitions' outputs into P partitions (every step after the hashes)

    def stage(name, task, calls, outputs, plans):
        d = fs.join(work, name)
        fs.make_dirs(d)
        out, c = run_stage(backend, task, calls(d), outputs, plans, d)
        counts.update(c)
        return d, out

    first = _plan(len(calls), P, cfg)
    hdir, (bands, nodes) = stage("hashed", _hash_task, lambda d: (
        (i, source, args, max_distance, P, fs.join(d, f"bands-{i:06d}.arrow"), fs.join(d, f"nodes-{i:06d}.arrow"),
         first.top) for i, args in enumerate(calls)), 2, [first, first])
    edir, (edges,) = stage("edges", _band_task, lambda d: (
        (bands.group(g), max_distance, P, fs.join(d, f"{int(bands.keys[g]):06d}.arrow"), plan.top)
        for g in range(len(bands))), 1, [plan])
    if not len(edges):
        fs.remove_tree(hdir)
        return IndexBuilder().build(), counts
    stars, steps = star_components(backend, edges, P, plan, fs.join(work, "components"))
    ldir, (labelled,) = stage("labelled", _label_task, lambda d: (
        (stars.group(g), nodes.get(int(stars.keys[g])), P, fs.join(d, f"{int(stars.keys[g]):06d}.arrow"), plan.top)
        for g in range(len(stars))), 1, [plan])
    for d in (hdir, edir, fs.join(work, "components")):  # the band, node, edge and star files are read
        fs.remove_tree(d)
    cdir, (canon,) = stage("canonical", _canonical_task, lambda d: (
        (labelled.group(g), P, fs.join(d, f"{int(labelled.keys[g]):06d}.arrow"), plan.top)
        for g in range(len(labelled))), 1, [plan])
    fs.remove_tree(ldir)
    _, (out,) = stage("urls", _pick_task, lambda d: (
        (canon.group(g), int(canon.keys[g]), fs.join(d, f"{int(canon.keys[g]):06d}.arrow"))
        for g in range(len(canon))), 1, [None])
    fs.remove_tree(cdir)
    counts["component_steps"] = steps
    return out, counts


def _small_index(backend, source: Callable, calls: list[tuple], max_distance: int, P: int, work: str,
                 images: int) -> tuple[Index, Counter]:
    """:func:`phash_canonical_index` for a few images: the calls' (urls, hashes) hashed by tasks, gathered in
    order and clustered by :func:`~filters.dedup.phash.phash_clusters` in the driver (the one pass the tasks
    reproduce); the mapping written as :func:`_pick_task` writes it (rows sorted by URL, a record batch
    per URL partition, one file)."""
    from filters.dedup.phash import phash_clusters

    urls: list = []
    hashes: list = []
    for u, h in backend.imap(source, calls):
        urls += u
        hashes += h
    counts = Counter(hashed=sum(1 for u, h in zip(urls, hashes) if u is not None and h is not None))
    if counts["hashed"] > images:
        raise ValueError(f"pHash: {counts['hashed']} images hashed, more than the {images} counted")
    mapping = phash_clusters(urls, hashes, max_distance)
    del urls, hashes
    counts["urls"] = len(mapping)
    out = IndexBuilder()
    if mapping:
        t = pa.table({"url": list(mapping), "canonical": list(mapping.values())}, schema=CANONICAL_SCHEMA)
        del mapping
        t = t.take(pc.sort_indices(t, sort_keys=[("url", "ascending")]))
        d = fs.join(work, "urls")
        fs.make_dirs(d)
        path, labels = write_partitioned(t, url_partition(t["url"].to_pylist(), P), fs.join(d, "small.arrow"))
        out.add(0, path, labels)
    return out.build(), counts


def read_canonical(index: Index) -> dict[str, str]:
    """The whole mapping of :func:`phash_canonical_index`'s result, in memory (tests and small tools only)."""
    out: dict[str, str] = {}
    for g in range(len(index)):
        t = read_rows(index.group(g), CANONICAL_SCHEMA)
        out.update(zip(t["url"].to_pylist(), t["canonical"].to_pylist()))
    return out


def given_hashes(urls: list, hashes: list) -> tuple[list, list]:
    """A ``source`` for :func:`phash_canonical_index` when the hashes are already known (tests, benchmarks)."""
    return urls, hashes
