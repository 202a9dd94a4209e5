"""The global dedup passes: the same pure functions as ``filters.dedup``, partitioned on disk.

One engine for every pass: key -> partition -> decide -> apply, its tasks run by a
:mod:`pipeline.shuffle` backend (``LocalBackend``: in this process, no Ray; ``RayBackend``: Ray tasks,
on one machine or a cluster). The run (``pipeline.run``) calls :func:`decide` once per pass over all
its units and :func:`apply` on each unit; nothing else drives the passes.

- key and partition: map tasks read groups of files (about ``READ_BLOCK_BYTES`` of Parquet each, in
  record batches of ``BATCH_ROWS`` rows), project the few columns a pass needs and hash-partition them
  by the pass's key (URL, domain, image-set key, image URL, MinHash band key) into P partitions,
  streamed into one Arrow IPC file per task (one record batch per partition per flush of its buffer).
- merge (large passes only): when (map tasks x partitions) or the map tasks exceed the fan-in limits
  (``dedup.shuffle_single_round_max``, ``dedup.shuffle_fan_in``), the map files are merged in rounds
  in which no task opens more than F files (:mod:`pipeline.rounds`; the same rows reach each partition
  in the same order, so the same decisions).
- decide: one reduce task per partition reads its batches from every map file (at most F merged files
  after merge rounds) and runs the pure per-partition decision from ``filters.dedup``. P grows with the number of documents (at least
  ``dedup.num_partitions``, at most ``dedup.docs_per_partition`` documents each), so what a task holds
  is bounded whatever the size of the dataset, and only small results reach the driver.
- the decision is routed back, on disk, to the files holding its documents (each reduce task writes
  its rows as one IPC batch per input file, merged in rounds like the keys when there are many), then
  split into one small Parquet per unit (``units/<unit>.parquet``), so :func:`apply` on a unit reads only
  its own share; these shares are the whole decision (:func:`decision_table`). With ``url_warc``
  (obelics-2023) a removed (url, warc_filename) pair matches documents in any partition: the removed
  pairs and every document's pair meet in a second shuffle keyed by the pair's 64-bit hash. What is
  broadcast once (``backend.put``) is small or follows the duplicates, not the documents: the sorted
  64-bit hashes of the too-frequent image URLs (a false match needs a 64-bit hash collision).
- the driver's part: one listing of the stage folder, the units' sizes and rows read by survey tasks
  (:func:`survey`), the shuffle index as flat arrays (:class:`pipeline.rounds.Index`, 16 bytes an entry),
  the tasks' calls and results streamed (``Backend.imap``), a few maps per unit (its path and position).

MinHash runs as a chain of such steps, every one a task per partition whose output is written, not
returned (:func:`minhash_decision`): the band rows (key, doc_id, recency) partitioned by band key give
each bucket's candidate edges (hash pairs), their nodes and each node's confirm partitions (routed back to
its files); each map task reads its own files' share of those and shuffles the candidates' shingle sets
to the confirm partitions, where the edges are confirmed; the connected components of the confirmed
edges are found by Large-Star/Small-Star steps over the partitioned edge files
(:mod:`pipeline.components`); nodes and edges are shuffled by component and the greedy removal runs per
component partition (the same removals as over the whole graph: removal only follows edges, and each
component is ranked in the same order); the removals are routed back to their files like the other
passes'. The driver holds the files' indexes and counts, never a node, an edge or a removal. A component
is not split, but no task holds one whole: the greedy task holds ~14 bytes a node of its partition's
components and one spilled range of their recency keys, edges or removed rows (:mod:`pipeline.greedy`);
the label task reads star rows and edges a record batch at a time, and a component step spills a partition
over ``pipeline.components.STEP_BYTES``. A task that joins indexes (confirm: candidates and features; label:
stars, nodes and edges; greedy: nodes and edges) opens at most F files of each, 3F in all.

Partition files live under the decision folder: on a cluster it is on storage every node sees, as
the run's units are. File operations go through :mod:`pipeline.shuffle`'s few file functions.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.base import FilterStats
from filters.dedup import image_set as image_set_mod
from filters.dedup.common import REMOVED_SCHEMA, hash64, partition_of
from filters.dedup.config import DedupConfig
from filters.dedup.image_url import image_url_hashes, remove_image_nodes, too_frequent
from filters.dedup.minhash import REASON as MINHASH_REASON
from filters.dedup.minhash import (
    MinHasher,
    bucket_edges,
    confirm,
    document_text,
    recency_rank,
)
from filters.dedup.paragraphs import (
    DROPS_SCHEMA,
    apply_paragraph_drops,
    duplicated_paragraphs,
    paragraph_keys,
)
from filters.dedup.recency import recency_column
from filters.dedup.url import url_removals
from obelics import storage
from pipeline import shuffle as fs
from pipeline.components import (
    read_batches,
    read_rows,
    run_stage,
    star_components,
    star_labels_of,
    write_edges,
    write_partitioned,
)
from pipeline.greedy import greedy_partition
from pipeline.rounds import (
    GroupedWriter,
    Index,
    IndexBuilder,
    ShufflePlan,
    drop_part,
    merge_rounds,
    plan_shuffle,
    slot_of,
)
from pipeline.shuffle import Backend, get_backend, shared_value

log = logging.getLogger("obelics.dedup")

KEY_COLUMNS = ["doc_id", "url", "warc_filename", "capture_date", "images"]
# Parquet bytes per map task: small units are grouped, a big one is read alone. A task's memory does not
# follow it (record batches of BATCH_ROWS, keyed rows flushed at FLUSH_BYTES); fewer map tasks mean fewer
# (map task, partition) batches for every reduce task to read
READ_BLOCK_BYTES = 64 << 20
MIN_GROUP_BYTES = 1 << 20  # a map task reads at least this much when groups are cut to spread over the CPUs
BATCH_ROWS = 8192  # rows per record batch read from a file (memory per task does not follow file size)
FLUSH_BYTES = 64 << 20  # keyed rows a map task buffers before writing them grouped by partition


def config_of(profile) -> DedupConfig:
    if isinstance(profile, DedupConfig):
        return profile
    from obelics.config import load_profile

    return load_profile(profile).section("dedup", DedupConfig)


# -- files and tasks ------------------------------------------------------------------------------
def file_groups(paths: list[str], max_bytes: int | None = None, cpus: int = 1) -> list[list[str]]:
    """Consecutive files grouped up to ``max_bytes`` (``READ_BLOCK_BYTES``; a bigger file forms a group alone).

    One task per small file made a pass over many small units cost ~0.1 s per file in overhead. With
    ``cpus`` (the backend's) and no ``max_bytes``, groups are also cut at the total over ``cpus`` (at
    least ``MIN_GROUP_BYTES``): a run of few units then keys its documents on every CPU, not in one task.
    """
    sizes = paths.sizes if isinstance(paths, Inputs) else [fs.file_size(p) for p in paths]
    if max_bytes is None:
        max_bytes = READ_BLOCK_BYTES
        if cpus > 1:
            max_bytes = min(max_bytes, max(MIN_GROUP_BYTES, -(-sum(sizes) // cpus)))
    groups: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for p, s in zip(paths, sizes):
        if cur and size + s > max_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += s
    if cur:
        groups.append(cur)
    return groups


def backend_cpus(backend: Backend) -> int:
    """The CPUs ``backend``'s tasks run on: the Ray cluster's, 1 for the local backend."""
    if getattr(backend, "name", "local") != "ray":
        return 1
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _iter_tables(paths: list[str], columns: list[str] | None = None, batch_rows: int | None = None):
    """Record batches (as tables) of ``paths``, only ``columns`` that the files have."""
    for p in paths:
        f = fs.parquet_file(p)
        cols = None if columns is None else [c for c in columns if c in f.schema_arrow.names]
        for b in f.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=cols):
            yield pa.Table.from_batches([b])


def num_rows(paths: list[str]) -> int:
    """Rows in Parquet files, from their footers (read once by :func:`survey` for :class:`Inputs`)."""
    if isinstance(paths, Inputs):
        return paths.rows
    return sum(fs.parquet_file(p).metadata.num_rows for p in paths)


class Inputs(list):
    """A pass's input files (a list of paths) with each file's size and their rows, read once per decision
    by :func:`survey`'s tasks: every shuffle of the pass groups its files by size and every pass sizes its
    partitions by rows, which cost the driver a request per unit each time (3-4 per unit per pass: on
    object storage, hours of round trips at 90,000 units)."""

    sizes: list[int]
    rows: int


SURVEY_FILES = 1000  # files a survey task reads the size and footer of


def _survey_task(paths: list[str]) -> tuple[list[int], int]:
    return [fs.file_size(p) for p in paths], sum(fs.parquet_file(p).metadata.num_rows for p in paths)


def survey(backend: Backend, paths: list[str]) -> Inputs:
    """``paths`` as :class:`Inputs`: sizes and rows read by tasks of ``SURVEY_FILES`` files each."""
    out = Inputs(paths)
    out.sizes, out.rows = [], 0
    calls = ((paths[i:i + SURVEY_FILES],) for i in range(0, len(paths), SURVEY_FILES))
    for sizes, rows in backend.imap(_survey_task, calls):
        out.sizes.extend(sizes)
        out.rows += rows
    return out


def num_partitions(paths: list[str], cfg: DedupConfig) -> int:
    """Hash partitions for a pass over ``paths``: at most ``cfg.docs_per_partition`` documents each."""
    return partitions_for(num_rows(paths), cfg)


def partitions_for(rows: int, cfg: DedupConfig) -> int:
    """Hash partitions for a pass over ``rows`` documents (at least ``cfg.num_partitions``)."""
    return max(cfg.num_partitions, math.ceil(rows / max(cfg.docs_per_partition, 1)))


def _partition_task(paths: list[str], columns: list[str] | None, key_fn: Callable, out_path: str,
                    file_ids: list[int] | None = None, batch_rows: int | None = None,
                    bounds: np.ndarray | None = None, flush_bytes: int | None = None):
    """Map side: ``key_fn(batch)`` (a table with ``_part``) over the files' record batches, streamed into
    one Arrow IPC file. Keyed rows are buffered up to ``FLUSH_BYTES`` and then written grouped by
    partition, one record batch per partition (rows in input order), so the task holds at most a buffer
    and a partition's rows are a few large batches, not one per input batch. Returns (path, partition
    of each record batch). With ``bounds`` (a multi-round shuffle, :mod:`pipeline.rounds`) the batches
    are per slot of partitions and the rows keep ``_part``; the labels are the slots' first partitions.

    One batch per (input batch, partition) made the batch count grow as documents x partitions: at 10
    million documents a pass wrote ~2.5 million batches of ~5 rows (~70 us of IPC overhead each).

    With ``file_ids`` (one per path; ``key_fn`` then gives one row per input row) the rows carry the id
    of the file they come from as ``_file``, so a decision can be routed back to its file.
    """
    out = GroupedWriter(out_path, flush_bytes or FLUSH_BYTES)
    try:
        for i, path in enumerate(paths):
            fn = key_fn.for_file(path) if hasattr(key_fn, "for_file") else key_fn  # a key of the file's own
            for t in _iter_tables([path], columns, batch_rows):
                k = fn(t)
                if file_ids is not None:
                    k = k.append_column("_file", pa.array(np.full(k.num_rows, file_ids[i], np.int64)))
                if not k.num_rows:
                    continue
                part = k["_part"].to_numpy()
                if bounds is None:
                    out.add(k.drop_columns(["_part"]), part)
                else:
                    out.add(k, slot_of(bounds, part))
        return out.close()
    finally:
        out.abort()


def _reduce_task(locs: list[tuple[str, list[int]]], fn: Callable, p: int):
    """Reduce side: partition ``p``'s record batches from every map file (or merged file), then
    ``fn(table, p)``."""
    return fn(drop_part(read_batches(locs)), p)


def shuffle_plan(map_tasks: int, parts: int, cfg: DedupConfig) -> ShufflePlan:
    """The plan of a shuffle of ``map_tasks`` files into ``parts`` partitions under ``cfg``'s fan-in."""
    return plan_shuffle(map_tasks, parts, cfg.shuffle_fan_in, cfg.shuffle_single_round_max)


def shuffle(backend: Backend, paths: list[str], columns: list[str] | None, key_fn: Callable, reduce_fn: Callable,
            workdir: Path, parts: int, cfg: DedupConfig, tag_files: bool = False,
            on_result: Callable | None = None) -> list | None:
    """Hash-partition ``key_fn``'s rows of ``paths`` (``parts`` partitions) into files under ``workdir``
    (map tasks, one per file group), merged in rounds of bounded fan-in when the plan says so
    (:mod:`pipeline.rounds`), and ``reduce_fn(rows, p)`` each non-empty partition (reduce tasks), on
    ``backend``; returns the results in partition order, or passes each to ``on_result`` as it arrives
    (in any order; the driver then holds one at a time). With ``tag_files`` the rows carry ``_file``,
    the index in ``paths`` of their file."""
    fs.make_dirs(workdir)
    index = {p: i for i, p in enumerate(paths)}
    try:
        groups = file_groups(paths, cpus=backend_cpus(backend))
        plan = shuffle_plan(len(groups), parts, cfg)
        maps = IndexBuilder()
        calls = ((g, columns, key_fn, fs.join(workdir, f"map-{i:05d}.arrow"), [index[p] for p in g] if tag_files
                  else None, BATCH_ROWS, plan.top, FLUSH_BYTES) for i, g in enumerate(groups))
        for i, (path, labels) in enumerate(backend.imap(_partition_task, calls)):
            maps.add(i, path, labels)
        locs = maps.build()
        if plan.multi:
            locs = merge_rounds(backend, locs, plan, workdir, FLUSH_BYTES)
        reduces = ((locs.group(g), reduce_fn, int(locs.keys[g])) for g in range(len(locs)))
        if on_result is None:
            return list(backend.imap(_reduce_task, reduces))
        backend.map_unordered(_reduce_task, reduces, on_result)
        return None
    finally:
        fs.remove_tree(workdir)


# -- deciding -------------------------------------------------------------------------------------
def _keyed(t: pa.Table, key_fn: Callable, P: int, drop_null: bool = False) -> pa.Table:
    """``t`` with ``_part``, the hash partition of each row's key. ``drop_null``: rows without a key are left
    out (the pass never removes them): a null key hashes to partition 0, which would then hold every such
    row of the dataset (10M documents: millions of documents whose images were all removed as too frequent,
    in one image-set reduce task)."""
    keys = key_fn(t)
    if drop_null:
        has = np.fromiter((k is not None for k in keys), bool, len(keys))
        if not has.all():
            t = t.filter(pa.array(has))
            keys = [k for k in keys if k is not None]
    return t.append_column("_part", pa.array(partition_of(keys, P), pa.int64()))


def _image_set_key(t: pa.Table, key: str) -> list:
    return image_set_mod.image_set_keys(t, key).to_pylist()


def _pair_strings(t: pa.Table) -> list:
    return pc.binary_join_element_wise(pc.fill_null(t["url"].combine_chunks().cast(pa.string()), ""),
                                       pc.fill_null(t["warc_filename"].combine_chunks().cast(pa.string()), ""),
                                       "\x00").to_pylist()


@dataclass
class Routed:
    """A decision left on disk and routed back to the input files: where each input file's rows are
    (an :class:`pipeline.rounds.Index` whose labels are the input files' positions in the pass's paths);
    ``kind`` "removed" (doc_id, reason), "drops" (doc_id, drop_hashes) or "images" (h: the hashes of the
    too-frequent image URLs that occur in the file)."""

    locs: Index
    counts: dict[str, int]  # removals by reason, or {"documents": n} for drops
    kind: str

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def rows_of(self, file_id: int) -> pa.Table:
        """The rows for input file ``file_id`` (its position in the pass's paths)."""
        schema = _SCHEMAS[self.kind]
        locs = self.locs.get(file_id)
        return read_batches(locs).select(schema.names) if locs else schema.empty_table()


def _route_rows(keys: pa.Table, result: pa.Table, out_path: str, bounds: np.ndarray | None = None):
    """``result`` (rows keyed by doc_id, from the partition ``keys`` with ``_file``) as an IPC file with
    one batch per input file holding each doc_id; returns (path, the file of each batch). With ``bounds``
    (the routing is a multi-round shuffle whose partitions are the input files): one batch per slot of
    files, each row's file in ``_part``."""
    pos = pc.fill_null(pc.index_in(keys["doc_id"], value_set=result["doc_id"].combine_chunks()), -1)
    pos = pos.to_numpy().astype(np.int64)
    sel = pos >= 0
    pairs = np.unique(np.stack([keys["_file"].to_numpy()[sel], pos[sel]], 1), axis=0)
    return write_partitioned(result.take(pa.array(pairs[:, 1])), pairs[:, 0], out_path, bounds)


def route_plan(parts: int, paths: list[str], cfg: DedupConfig) -> ShufflePlan:
    """Routing a decision back is a shuffle too: up to ``parts`` reduce outputs into one partition per
    input file (one round, or merge rounds when (parts x files) is large)."""
    return shuffle_plan(parts, len(paths), cfg)


class _RoutedResults:
    """Reduce results (partition, IPC path or None, file (or slot) of each batch, counts) gathered as they
    arrive: the index of the routed rows (reduce output ``p`` is file ``p``, so the order of arrival does
    not matter) and the counts; the driver keeps flat arrays, not the results."""

    def __init__(self):
        self.builder = IndexBuilder()
        self.counts: Counter = Counter()

    def add(self, r) -> None:
        p, path, labels, counts = r
        self.counts.update(counts)
        self.builder.add(p, path, labels)

    def routed(self, backend: Backend, kind: str, plan: ShufflePlan, work: str) -> Routed:
        """The :class:`Routed` decision, merged in rounds when ``plan`` (from :func:`route_plan`) says so."""
        locs = self.builder.build()
        if plan.multi:
            locs = merge_rounds(backend, locs, plan, fs.join(work, "route-merge"), FLUSH_BYTES)
        return Routed(locs, dict(self.counts), kind)


def _routed_removal_reduce(t: pa.Table, p: int, decide_fn: Callable, out_dir: str, bounds: np.ndarray | None = None):
    """One partition's removals, routed back to the files of the removed documents."""
    removed = decide_fn(t).select(["doc_id", "reason"]).cast(REMOVED_SCHEMA)
    if removed.num_rows == 0:
        return p, None, np.zeros(0, np.int64), {}
    counts = dict(zip(*np.unique(removed["reason"].to_numpy(zero_copy_only=False), return_counts=True)))
    path, parts = _route_rows(t, removed, fs.join(out_dir, f"removed-{p:05d}.arrow"), bounds)
    return p, path, parts, {str(k): int(v) for k, v in counts.items()}


def _pair_hash_reduce(t: pa.Table, p: int, decide_fn: Callable, Q: int, out_dir: str,
                      bounds: np.ndarray | None = None):
    """One image-set partition's removed (url, warc_filename) pairs as (h, reason) rows, h the pair's 64-bit
    hash, written partitioned by ``h % Q`` (the join's partitions; with ``bounds``, by slot): a removed pair
    removes the documents holding it in any partition, which the join finds."""
    removed = decide_fn(t)
    if removed.num_rows == 0:
        return p, None, np.zeros(0, np.int64), {}
    h = hash64(_pair_strings(removed))
    rows = pa.table({"h": pa.array(h, pa.uint64()), "reason": removed["reason"].combine_chunks().cast(pa.string())})
    path, parts = write_partitioned(rows, (h % np.uint64(Q)).astype(np.int64),
                                     fs.join(out_dir, f"pairs-{p:05d}.arrow"), bounds)
    counts = dict(zip(*np.unique(rows["reason"].to_numpy(zero_copy_only=False), return_counts=True)))
    return p, path, parts, {str(k): int(v) for k, v in counts.items()}


def _pair_rows(t: pa.Table, Q: int) -> pa.Table:
    """(h, doc_id) of every document, h the hash of its (url, warc_filename) pair, partitioned by ``h % Q``."""
    h = hash64(_pair_strings(t))
    return pa.table({"h": pa.array(h, pa.uint64()), "doc_id": t["doc_id"].combine_chunks().cast(pa.string()),
                     "_part": pa.array((h % np.uint64(Q)).astype(np.int64))})


def _pair_join_reduce(t: pa.Table, q: int, pairs, out_dir: str, bounds: np.ndarray | None = None):
    """Join partition ``q``: the documents whose pair was removed (the reason of its first removal, in
    image-set partition order), routed back to their files."""
    locs = shared_value(pairs).get(q)
    if not locs:
        return q, None, np.zeros(0, np.int64), {}
    rm = drop_part(read_batches(locs))
    hs, first = np.unique(rm["h"].to_numpy(), return_index=True)
    h = t["h"].to_numpy()
    pos = np.minimum(np.searchsorted(hs, h), len(hs) - 1)
    hit = hs[pos] == h
    if not hit.any():
        return q, None, np.zeros(0, np.int64), {}
    removed = pa.table({"doc_id": t["doc_id"].filter(pa.array(hit)).combine_chunks(),
                        "reason": rm["reason"].take(pa.array(first[pos[hit]]))}, schema=REMOVED_SCHEMA)
    counts = dict(zip(*np.unique(removed["reason"].to_numpy(zero_copy_only=False), return_counts=True)))
    path, parts = _route_rows(t, removed, fs.join(out_dir, f"removed-{q:05d}.arrow"), bounds)
    return q, path, parts, {str(k): int(v) for k, v in counts.items()}


def _routed_removals(backend: Backend, paths: list[str], key_fn: Callable, decide_fn: Callable,
                     work: Path, P: int, cfg: DedupConfig) -> Routed:
    out_dir = fs.join(work, "routed")
    fs.make_dirs(out_dir)
    route = route_plan(P, paths, cfg)
    res = _RoutedResults()
    shuffle(backend, paths, KEY_COLUMNS, key_fn, functools.partial(
        _routed_removal_reduce, decide_fn=decide_fn, out_dir=out_dir, bounds=route.top), fs.join(work, "shuffle"),
        P, cfg, tag_files=True, on_result=res.add)
    return res.routed(backend, "removed", route, work)


def _url_or_doc_id(t: pa.Table) -> list:
    """The URL pass's partition key: the URL, or for a document without one (never a URL duplicate, only
    checked for images) its doc_id, so such documents spread over the partitions instead of all hashing
    to partition 0 (a null key) or to the partition of ""."""
    return [u if u else "\x00" + d for u, d in zip(t["url"].to_pylist(), t["doc_id"].to_pylist())]


def url_decision(backend: Backend, paths: list[str], cfg: DedupConfig, work: Path) -> Routed:
    """The URL pass's removals (partitioned by URL), routed back to their files under ``work``."""
    P = num_partitions(paths, cfg)
    return _routed_removals(backend, paths, functools.partial(_keyed, key_fn=_url_or_doc_id, P=P),
                            functools.partial(url_removals, cfg=cfg), work, P, cfg)


def image_set_decision(backend: Backend, paths: list[str], cfg: DedupConfig, work: Path) -> Routed:
    """The image-set pass's removals (partitioned by image-set key), routed back to their files. With
    ``url_warc`` a removed (url, warc_filename) pair removes every document holding it, in any partition:
    the removed pairs and every document's pair meet in a second shuffle partitioned by the pair's hash
    (the driver held the hash of every removed pair and every route task read all of them)."""
    P = num_partitions(paths, cfg)
    # documents without an image have no key and are always kept: they stay out of the shuffle
    key_fn = functools.partial(_keyed, key_fn=functools.partial(_image_set_key, key=cfg.image_set.key), P=P,
                               drop_null=True)
    decide_fn = functools.partial(image_set_mod.image_set_duplicates, cfg=cfg)
    if cfg.image_set.remove_by != "url_warc":
        return _routed_removals(backend, paths, key_fn, decide_fn, work, P, cfg)
    pairs_dir, out_dir = fs.join(work, "pairs"), fs.join(work, "routed")
    fs.make_dirs(pairs_dir)
    fs.make_dirs(out_dir)
    pairs_plan, route = shuffle_plan(P, P, cfg), route_plan(P, paths, cfg)  # P reduce outputs -> P join partitions
    removed = _RoutedResults()
    shuffle(backend, paths, KEY_COLUMNS, key_fn, functools.partial(
        _pair_hash_reduce, decide_fn=decide_fn, Q=P, out_dir=pairs_dir, bounds=pairs_plan.top),
        fs.join(work, "shuffle"), P, cfg, on_result=removed.add)
    pairs = removed.builder.build()
    if pairs_plan.multi:
        pairs = merge_rounds(backend, pairs, pairs_plan, fs.join(work, "pairs-merge"), FLUSH_BYTES)
    if not len(pairs):
        return Routed(pairs, {}, "removed")
    joined = _RoutedResults()
    shuffle(backend, paths, ["doc_id", "url", "warc_filename"], functools.partial(_pair_rows, Q=P),
            functools.partial(_pair_join_reduce, pairs=backend.put(pairs), out_dir=out_dir, bounds=route.top),
            fs.join(work, "join"), P, cfg, tag_files=True, on_result=joined.add)
    return joined.routed(backend, "removed", route, work)


IMAGE_HASH_SCHEMA = pa.schema([("h", pa.uint64())])
_SCHEMAS = {"removed": REMOVED_SCHEMA, "drops": DROPS_SCHEMA, "images": IMAGE_HASH_SCHEMA}


def _image_hash_rows(t: pa.Table, count: str, canonical, P: int) -> pa.Table:
    h = image_url_hashes(t, count, shared_value(canonical))
    return pa.table({"h": pa.array(h, pa.uint64()), "_part": pa.array((h % np.uint64(P)).astype(np.int64))})


def unit_canonical(path: str) -> dict[str, str]:
    """{url: canonical url} of a unit's pHash-clustered image URLs: the ``canonical`` column of its joined
    image rows (``path``: ``units/<unit>.parquet`` of the image-table decision; none when it is missing)."""
    try:
        t = fs.read_parquet(path, columns=["url", "canonical"])
    except FileNotFoundError:  # a unit without documents at the image-table decision
        return {}
    t = t.filter(pc.is_valid(t["canonical"]))
    return dict(zip(t["url"].to_pylist(), t["canonical"].to_pylist()))


@dataclass(frozen=True)
class _UnitCanonicalKeys:
    """The image-URL map key of a file whose pHash canonical URLs are its unit's joined image rows
    (``unit_dir/<unit>.parquet``, the unit's file having the same name): each map task reads its own files'
    units, so no task gets, and the driver never holds, the whole mapping (:func:`_partition_task` asks
    ``for_file`` once per file)."""

    count: str
    unit_dir: str
    P: int

    def for_file(self, path: str) -> Callable:
        canonical = unit_canonical(fs.join(self.unit_dir, storage.basename(path)))
        return functools.partial(_image_hash_rows, count=self.count, canonical=canonical, P=self.P)


def _frequent_reduce(t: pa.Table, p: int, max_count: int, out_dir: str, bounds: np.ndarray | None = None):
    """One hash partition's too-frequent image URLs, routed back as (h) rows to the files they occur in (once
    per file). Returns (p, path, files, {"frequent_image_url": how many})."""
    h = t["h"].to_numpy()
    frequent = too_frequent(h, max_count)
    if not len(frequent):
        return p, None, np.zeros(0, np.int64), {}
    sel = np.isin(h, frequent)
    pairs = np.unique(np.stack([t["_file"].to_numpy()[sel].astype(np.uint64), h[sel]], 1), axis=0)
    path, parts = write_partitioned(pa.table({"h": pa.array(pairs[:, 1], pa.uint64())}), pairs[:, 0].astype(np.int64),
                                    fs.join(out_dir, f"frequent-{p:05d}.arrow"), bounds)
    return p, path, parts, {"frequent_image_url": len(frequent)}


def frequent_image_urls(backend: Backend, paths: list[str], cfg: DedupConfig, work: Path,
                        canonical_dir: str | None = None) -> Routed:
    """The image URLs seen more than ``max_count`` times (counted per hash partition), as the hashes of those
    that occur in each file, routed back to the files (kind "images"): nothing on the driver grows with
    the number of frequent URLs. With ``canonical_dir`` (the image-table decision's folder of units' joined
    rows) and ``image_url.use_phash``, a URL in a pHash cluster counts as its canonical URL, read by each map
    task from its files' units' rows (nothing broadcast)."""
    c = cfg.image_url
    P = num_partitions(paths, cfg)
    if canonical_dir and c.use_phash:
        key_fn = _UnitCanonicalKeys(c.count, str(canonical_dir), P)
    else:
        key_fn = functools.partial(_image_hash_rows, count=c.count, canonical=None, P=P)
    out_dir = fs.join(work, "routed")
    fs.make_dirs(out_dir)
    route = route_plan(P, paths, cfg)
    res = _RoutedResults()
    shuffle(backend, paths, ["images"], key_fn,
            functools.partial(_frequent_reduce, max_count=c.max_count, out_dir=out_dir, bounds=route.top),
            fs.join(work, "shuffle"), P, cfg, tag_files=True, on_result=res.add)
    return res.routed(backend, "images", route, work)


def _paragraph_rows(t: pa.Table, pcfg, P: int) -> pa.Table:
    """Paragraph keys partitioned by domain. A document without a countable paragraph can have nothing
    dropped: it stays out of the shuffle. A document without a URL has the domain "" (the original's
    ``urlparse(url).netloc``): such documents are one domain and meet in one partition, as in the original."""
    k = paragraph_keys(t, pcfg)
    has = pc.greater(pc.list_value_length(k["hashes"]), 0)
    if not pc.all(has).as_py():
        k = k.filter(has)
    return k.append_column("_part", pa.array(partition_of(k["domain"].to_pylist(), P), pa.int64()))


def _paragraph_reduce(t: pa.Table, p: int, min_count: int, out_dir: str, bounds: np.ndarray | None = None):
    """Drops of one domain partition, routed back to the files of their documents."""
    drops = duplicated_paragraphs(t, min_count)
    if drops.num_rows == 0:
        return p, None, np.zeros(0, np.int64), {}
    path, parts = _route_rows(t, drops, fs.join(out_dir, f"drops-{p:05d}.arrow"), bounds)
    return p, path, parts, {"documents": drops.num_rows}


def paragraph_decision(backend: Backend, paths: list[str], cfg: DedupConfig, work: Path) -> Routed:
    """(doc_id, drop_hashes) of documents holding a paragraph repeated in their domain (partitioned by
    domain), left on disk under ``work/drops`` and routed back to each input file."""
    P = num_partitions(paths, cfg)
    out_dir = fs.join(work, "drops")
    fs.make_dirs(out_dir)
    route = route_plan(P, paths, cfg)
    res = _RoutedResults()
    shuffle(backend, paths, ["doc_id", "url", "domain", "texts"],
            functools.partial(_paragraph_rows, pcfg=cfg.paragraphs, P=P),
            functools.partial(_paragraph_reduce, min_count=cfg.paragraphs.min_count, out_dir=out_dir,
                              bounds=route.top),
            fs.join(work, "shuffle"), P, cfg, tag_files=True, on_result=res.add)
    return res.routed(backend, "drops", route, work)


# -- MinHash ---------------------------------------------------------------------------------------
MINHASH_COLUMNS = ["doc_id", "texts", "warc_filename", "capture_date"]


def minhash_band_rows(batch: pa.Table, cfg: DedupConfig) -> pa.Table:
    """One row per (document, band): key, doc_id, recency; short documents have none."""
    mh = cfg.minhash
    hasher = MinHasher.from_config(mh)
    texts = [document_text(t) for t in batch["texts"].to_pylist()]
    sigs, nwords = hasher.text_signatures(texts)
    keys = hasher.band_keys(sigs)
    valid = np.flatnonzero(nwords >= max(mh.min_words, 1))
    rows = pa.array(np.repeat(valid, hasher.bands), pa.int64())
    rec = recency_column(batch, cfg.recency)
    return pa.table({
        "key": pa.array(keys[valid].reshape(-1), pa.uint64()),
        "doc_id": batch["doc_id"].combine_chunks().take(rows),
        "rec": rec.take(rows),
    })


def _band_rows_keyed(t: pa.Table, cfg: DedupConfig, P: int) -> pa.Table:
    rows = minhash_band_rows(t, cfg)
    return rows.append_column("_part", pa.array((rows["key"].to_numpy() % np.uint64(P)).astype(np.int64)))


def minhash_partition_edges(rows: pa.Table, p: int | None = None) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Candidate edges among the band rows of one partition (bucket heads = most recent): the documents
    on an edge (doc_id, rec) and the edges as int32 indices into them."""
    empty = pa.table({"doc_id": pa.array([], pa.string()), "rec": pa.array([], pa.string())})
    if rows.num_rows == 0:
        return empty, np.zeros(0, np.int32), np.zeros(0, np.int32)
    ids = rows["doc_id"].combine_chunks()
    uniq = pc.unique(ids)
    member = pc.index_in(ids, value_set=uniq).to_numpy()
    first_pos = np.full(len(uniq), -1, np.int64)
    first_pos[member[::-1]] = np.arange(len(member))[::-1]
    rec_u = rows["rec"].combine_chunks().take(pa.array(first_pos))
    prio = recency_rank(rec_u, uniq)
    a, b = bucket_edges(rows["key"].to_numpy(), member, prio[member])
    if len(a) == 0:
        return empty, np.zeros(0, np.int32), np.zeros(0, np.int32)
    on_edge, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    sel = pa.array(on_edge)
    nodes = pa.table({"doc_id": uniq.take(sel).cast(pa.string()), "rec": rec_u.take(sel).cast(pa.string())})
    return nodes, inverse[:len(a)].astype(np.int32), inverse[len(a):].astype(np.int32)


NODE_SCHEMA = pa.schema([("h", pa.uint64()), ("doc_id", pa.string()), ("rec", pa.string()), ("_file", pa.int64())])
CAND_SCHEMA = pa.schema([("x", pa.uint64()), ("y", pa.uint64())])
NEED_SCHEMA = pa.schema([("doc_id", pa.string()), ("q", pa.int64())])
FEATURE_SCHEMA = pa.schema([("h", pa.uint64()), ("sh", pa.list_(pa.uint64())), ("sig", pa.list_(pa.uint32()))])
LABELLED_SCHEMA = pa.schema([("label", pa.uint64()), ("h", pa.uint64()), ("doc_id", pa.string()),
                             ("rec", pa.string()), ("_file", pa.int64())])
_NONE = (None, np.zeros(0, np.int64))


def _band_reduce(t: pa.Table, p: int, K: int, verify: str, out_dir: str, part_bounds, route_bounds):
    """One band partition's candidate edges (bucket heads = most recent), written for the next steps, not
    returned: the nodes on them as (h, doc_id, rec, _file) partitioned by ``h % K`` (h: the doc_id's 64-bit
    hash; one row per file holding the doc_id); the edges as (x, y) hash pairs partitioned by ``x % K``, the
    confirm partition (with ``verify == "none"``: as confirmed edges for the components); and each node's
    confirm partitions as (doc_id, q) routed back to the files holding it, so the feature map reads only
    its own files' share. Returns (p, [nodes, edges, need] as (path, labels), counts)."""
    nodes, a, b = minhash_partition_edges(t.select(["key", "doc_id", "rec"]))
    if len(a) == 0:
        return [_NONE, _NONE, _NONE], {}
    ids = nodes["doc_id"]
    h = hash64(ids.to_pylist())
    pos = pc.fill_null(pc.index_in(t["doc_id"], value_set=ids), -1).to_numpy().astype(np.int64)
    sel = pos >= 0
    nf = np.unique(np.stack([pos[sel], t["_file"].to_numpy()[sel]], 1), axis=0)  # (node, file), by node
    take = pa.array(nf[:, 0])
    rows = pa.table({"h": pa.array(h[nf[:, 0]], pa.uint64()), "doc_id": ids.take(take),
                     "rec": nodes["rec"].take(take), "_file": pa.array(nf[:, 1], pa.int64())})
    out_nodes = write_partitioned(rows, (h[nf[:, 0]] % np.uint64(K)).astype(np.int64),
                                  fs.join(out_dir, f"nodes-{p:05d}.arrow"), part_bounds)
    x, y = np.minimum(h[a], h[b]), np.maximum(h[a], h[b])
    counts = {"candidate_edges": len(x)}
    if verify == "none":
        return [out_nodes, write_edges(x, y, K, fs.join(out_dir, f"edges-{p:05d}.arrow"), part_bounds), _NONE], counts
    q = (x % np.uint64(K)).astype(np.int64)
    out_cand = write_partitioned(pa.table({"x": pa.array(x, pa.uint64()), "y": pa.array(y, pa.uint64())}), q,
                                 fs.join(out_dir, f"cand-{p:05d}.arrow"), part_bounds)
    need = np.unique(np.concatenate([np.stack([a, q], 1), np.stack([b, q], 1)]), axis=0)  # (node, q), by node
    lo = np.searchsorted(nf[:, 0], need[:, 0])
    rep = np.searchsorted(nf[:, 0], need[:, 0], side="right") - lo
    row, at = _expand(lo, rep)  # each (node, q) once per file holding the node
    file_of = nf[at, 1]
    need_rows = pa.table({"doc_id": ids.take(pa.array(need[row, 0])), "q": pa.array(need[row, 1], pa.int64())})
    out_need = write_partitioned(need_rows, file_of, fs.join(out_dir, f"need-{p:05d}.arrow"), route_bounds)
    return [out_nodes, out_cand, out_need], counts


def _expand(lo: np.ndarray, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item i repeated ``rep[i]`` times, beside the positions ``lo[i], lo[i] + 1, ..., lo[i] + rep[i] - 1``
    (each item's run of matches in a sorted array): (items, positions)."""
    row = np.repeat(np.arange(len(lo)), rep)
    return row, np.repeat(lo - (np.cumsum(rep) - rep), rep) + np.arange(int(rep.sum()))


def _feature_rows(t: pa.Table, mh, nodes: pa.Array, codes: np.ndarray, Q: int) -> pa.Table:
    """Shingle set and signature of each document of ``t`` among ``nodes``, once per confirm partition that
    needs it (``codes``: sorted ``node * Q + partition``), with its doc_id's 64-bit hash ``h`` and ``_part``."""
    idx = pc.fill_null(pc.index_in(t["doc_id"], value_set=nodes), -1).to_numpy().astype(np.int64)
    hit = np.flatnonzero(idx >= 0)
    if len(hit) == 0:
        return FEATURE_SCHEMA.append(pa.field("_part", pa.int64())).empty_table()
    idx = idx[hit]
    h = MinHasher.from_config(mh)
    texts = [document_text(x) for x in t["texts"].take(pa.array(hit)).to_pylist()]
    flat, off, _ = h.batch_shingles(texts)
    # only what the confirmation reads (filters.dedup.minhash.confirm): the shingle sets for "exact", the
    # signatures for "signature"; the other column's lists are empty (in the default "exact", the candidates'
    # signatures were ~4% of the decision's CPU on the bench corpus, for nothing)
    if mh.verify == "signature":
        sets = [np.zeros(0, np.uint64)] * len(texts)
        sigs = h.signatures_flat(flat, off)
    else:
        sets = [np.unique(flat[off[i]:off[i + 1]]) for i in range(len(texts))]
        sigs = np.zeros((len(texts), 0), np.uint32)
    lens = np.fromiter((len(s) for s in sets), np.int64, len(sets))
    sh = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(lens)]), pa.int32()),
                                  pa.array(np.concatenate(sets) if sets else np.zeros(0, np.uint64), pa.uint64()))
    k = sigs.shape[1]
    sig = pa.ListArray.from_arrays(pa.array(np.arange(len(texts) + 1) * k, pa.int32()),
                                   pa.array(sigs.reshape(-1), pa.uint32()))
    lo = np.searchsorted(codes, idx * Q)
    hi = np.searchsorted(codes, idx * Q + Q)
    row, pos = _expand(lo, hi - lo)
    take = pa.array(row, pa.int64())
    dh = hash64(t["doc_id"].take(pa.array(hit)).to_pylist())
    return pa.table({"h": pa.array(dh[row], pa.uint64()), "sh": sh.take(take), "sig": sig.take(take),
                     "_part": pa.array(codes[pos] % Q, pa.int64())})


def _feature_task(group: list[str], needs: list, mh, Q: int, out_path: str, bounds):
    """Map side of the confirm shuffle: the features of the candidate documents of ``group``'s files (each
    file's share of the routed (doc_id, q) rows in ``needs``), partitioned by confirm partition q."""
    out = GroupedWriter(out_path, FLUSH_BYTES)
    try:
        for path, locs in zip(group, needs):
            if not locs:
                continue
            need = read_rows(locs, NEED_SCHEMA)
            nodes = pc.unique(need["doc_id"].combine_chunks())
            idx = pc.index_in(need["doc_id"], value_set=nodes).to_numpy().astype(np.int64)
            codes = np.unique(idx * Q + need["q"].to_numpy())
            for t in _iter_tables([path], ["doc_id", "texts"]):
                k = _feature_rows(t, mh, nodes, codes, Q)
                if k.num_rows:
                    part = k["_part"].to_numpy()
                    out.add(k.drop_columns(["_part"]) if bounds is None else k,
                            part if bounds is None else slot_of(bounds, part))
        return [out.close()], {}
    finally:
        out.abort()


def _confirm_task(cand_locs, feat_locs, mh, K: int, out_path: str, bounds):
    """Confirm partition q: its candidate edges checked on their documents' features; the confirmed ones
    written as (u, v) rows both ways, partitioned by ``u % K`` (the components' input)."""
    c = read_rows(cand_locs, CAND_SCHEMA)
    pairs = np.unique(np.stack([c["x"].to_numpy(), c["y"].to_numpy()], 1), axis=0)
    f = read_rows(feat_locs, FEATURE_SCHEMA)
    uniq, first = np.unique(f["h"].to_numpy(), return_index=True)
    if not len(pairs) or not len(uniq):
        return [_NONE], {}
    la = np.minimum(np.searchsorted(uniq, pairs[:, 0]), len(uniq) - 1)
    lb = np.minimum(np.searchsorted(uniq, pairs[:, 1]), len(uniq) - 1)
    ok = (uniq[la] == pairs[:, 0]) & (uniq[lb] == pairs[:, 1])  # every candidate's features came; guard anyway
    la, lb = la[ok], lb[ok]
    sh = f["sh"].combine_chunks()
    flat = pc.list_flatten(sh).to_numpy()
    off = np.concatenate([[0], np.cumsum(pc.list_value_length(sh).to_numpy())])
    sets = [flat[off[i]:off[i + 1]] for i in first]
    sigs = pc.list_flatten(f["sig"].combine_chunks()).to_numpy().reshape(f.num_rows, -1)[first]
    ca, cb = confirm(la, lb, mh, sets, sigs)
    if not len(ca):
        return [_NONE], {}
    return [write_edges(uniq[ca], uniq[cb], K, out_path, bounds)], {"confirmed_edges": len(ca)}


def _label_task(star_locs, node_locs, edge_locs, K: int, node_path: str, edge_path: str, bounds):
    """Node partition q: each node's component (from the star forest) joined to its (doc_id, rec, files)
    and to its confirmed edges, both written partitioned by ``label % K`` (the greedy removal's tasks).
    Nodes with no confirmed edge have no component and are left out (they are never removed)."""
    nodes, labels = star_labels_of(star_locs)
    n = read_rows(node_locs, NODE_SCHEMA)
    h = n["h"].to_numpy()
    pos = np.minimum(np.searchsorted(nodes, h), max(len(nodes) - 1, 0))
    hit = (nodes[pos] == h) if len(nodes) else np.zeros(len(h), bool)
    n = n.filter(pa.array(hit))
    lab = labels[pos[hit]]
    rows = pa.table({"label": pa.array(lab, pa.uint64()), **{c: n[c] for c in NODE_SCHEMA.names}})
    part = (lab % np.uint64(K)).astype(np.int64)
    out_nodes = write_partitioned(rows, part, node_path, bounds) if rows.num_rows else _NONE
    out = GroupedWriter(edge_path, FLUSH_BYTES)  # the edges a record batch at a time: a node may have millions
    try:
        for path, idx in edge_locs or ():
            for b in fs.iter_ipc_batches(path, idx):
                u, v = b.column("u").to_numpy(), b.column("v").to_numpy()
                sel = u < v  # each undirected edge once, from its smaller end (held by this partition)
                u, v = u[sel], v[sel]
                if not len(u):
                    continue
                part = (labels[np.searchsorted(nodes, u)] % np.uint64(K)).astype(np.int64)
                t = pa.table({"x": pa.array(u, pa.uint64()), "y": pa.array(v, pa.uint64())})
                out.add_partitioned(t, part, bounds)
        path, parts = out.close()
    finally:
        out.abort()
    out_edges = (path, parts) if len(parts) else _NONE
    return [out_nodes, out_edges], {"nodes": len(np.unique(lab)) if len(lab) else 0}


def _greedy_task(node_locs, edge_locs, c: int, out_path: str, route_bounds):
    """Greedy partition c: :func:`filters.dedup.minhash.greedy_removals` over its whole components (removal
    only follows edges, so on the whole graph it is the union of the results per component), nodes ranked
    by :func:`recency_rank` over (rec, doc_id) (ties by the doc_id hash), run by
    :func:`pipeline.greedy.greedy_partition` in memory bounded by its spill budget plus ~14 bytes a node;
    the removed documents routed back to their files. Returns (c, path, files, counts)."""
    path, parts, removed = greedy_partition(node_locs, edge_locs, out_path, route_bounds, flush_bytes=FLUSH_BYTES)
    if not removed:
        return c, None, np.zeros(0, np.int64), {}
    return c, path, parts, {MINHASH_REASON: removed}


def minhash_decision(backend: Backend, paths: list[str], cfg: DedupConfig, work: Path) -> Routed:
    """The MinHash pass's removals, decided in tasks and routed back to their files; the driver holds the
    files' indexes and counts, never a document, an edge or a removal:

    1. band rows partitioned by band key: each reduce task writes its candidate edges, their nodes and
       (``verify`` on) each node's confirm partitions routed back to its files;
    2. (``verify`` on) the candidates' features shuffled by confirm partition (each map task reads its own
       files' share of 1.), where the candidate edges are confirmed;
    3. connected components of the confirmed edges (:func:`pipeline.components.star_components`);
    4. each node's component joined to its (doc_id, rec, files) and to its edges, shuffled by component;
    5. the greedy removal per component partition, its removals routed back to their files.
    """
    mh = cfg.minhash
    P = num_partitions(paths, cfg)
    K = P
    part_plan, route = shuffle_plan(P, K, cfg), route_plan(P, paths, cfg)
    out_dir = fs.join(work, "bands-out")
    fs.make_dirs(out_dir)
    builders = [IndexBuilder() for _ in range(3)]
    counts: Counter = Counter()

    def gather(r):
        p, (outs, c) = r
        for b, (path, labels) in zip(builders, outs):
            b.add(p, path, labels)
        counts.update(c)

    shuffle(backend, paths, MINHASH_COLUMNS, functools.partial(_band_rows_keyed, cfg=cfg, P=P),
            functools.partial(_band_result, K=K, verify=mh.verify, out_dir=out_dir, part_bounds=part_plan.top,
                              route_bounds=route.top),
            fs.join(work, "bands"), P, cfg, tag_files=True, on_result=gather)
    nodes, edges, need = (b.build() for b in builders)
    if part_plan.multi:
        nodes = merge_rounds(backend, nodes, part_plan, fs.join(work, "nodes-merge"), FLUSH_BYTES)
        edges = merge_rounds(backend, edges, part_plan, fs.join(work, "edges-merge"), FLUSH_BYTES)
    if not len(edges):
        return Routed(edges, {}, "removed")
    if mh.verify != "none":  # the candidates' features go to the confirm partitions that need them
        if route.multi:
            need = merge_rounds(backend, need, route, fs.join(work, "need-merge"), FLUSH_BYTES)
        position = {p: i for i, p in enumerate(paths)}
        groups = file_groups(paths, cpus=backend_cpus(backend))
        feat_plan = shuffle_plan(len(groups), K, cfg)
        fdir = fs.join(work, "features")
        fs.make_dirs(fdir)
        calls = ((g, [need.get(position[p]) for p in g], mh, K, fs.join(fdir, f"map-{i:05d}.arrow"), feat_plan.top)
                 for i, g in enumerate(groups))
        (feats,), _ = run_stage(backend, _feature_task, calls, 1, [feat_plan], fdir)
        cdir = fs.join(work, "confirmed")
        fs.make_dirs(cdir)
        calls = ((edges.group(g), feats.get(int(edges.keys[g])), mh, K, fs.join(cdir, f"{int(edges.keys[g]):06d}.arrow"),
                  part_plan.top) for g in range(len(edges)))
        (edges,), c = run_stage(backend, _confirm_task, calls, 1, [part_plan], cdir)
        counts.update(c)
        fs.remove_tree(fdir)
    if not len(edges):
        return Routed(edges, {}, "removed")
    stars, steps = star_components(backend, edges, K, part_plan, fs.join(work, "components"))
    ldir = fs.join(work, "labelled")
    fs.make_dirs(ldir)
    calls = ((stars.group(g), nodes.get(int(stars.keys[g])), edges.get(int(stars.keys[g])), K,
              fs.join(ldir, f"nodes-{int(stars.keys[g]):06d}.arrow"), fs.join(ldir, f"edges-{int(stars.keys[g]):06d}.arrow"),
              part_plan.top) for g in range(len(stars)))
    (lnodes, ledges), c = run_stage(backend, _label_task, calls, 2, [part_plan, part_plan], ldir)
    log.info("minhash: %d candidate and %d confirmed edges, %d nodes in components, %d component steps",
             counts["candidate_edges"], counts.get("confirmed_edges", counts["candidate_edges"]), c["nodes"], steps)
    rdir = fs.join(work, "routed")
    fs.make_dirs(rdir)
    res = _RoutedResults()
    calls = ((lnodes.group(g), ledges.get(int(lnodes.keys[g])), int(lnodes.keys[g]),
              fs.join(rdir, f"removed-{int(lnodes.keys[g]):06d}.arrow"), route.top) for g in range(len(lnodes)))
    for r in backend.imap(_greedy_task, calls):
        res.add(r)
    return res.routed(backend, "removed", route, work)


def _band_result(t: pa.Table, p: int, **kw):
    return p, _band_reduce(t, p, **kw)


REMOVAL_DECISIONS = {"url": url_decision, "image_set": image_set_decision, "minhash": minhash_decision}


# -- the engine's two calls: decide over all units, apply to one unit --------------------------------
def decide(name: str, prev_dir: Path, units: list[str], ctx: dict) -> dict:
    """Decide pass ``name`` over the units' Parquet in ``prev_dir``; writes files under ``ctx['decision_dir']``.

    The tasks run on ``ctx["backend"]`` (a :mod:`pipeline.shuffle` backend), else on the one
    ``ctx["use_ray"]`` names (local when false or absent and Ray is not running). Returns a JSON-able
    decision: ``{"pass", "file", "unit_dir", "stats"}``.
    """
    backend = ctx.get("backend") or get_backend(ctx.get("use_ray"))
    cfg = config_of(ctx.get("profile", "default"))
    if not getattr(cfg, name).enabled:  # a disabled pass decides nothing and applies as a no-op
        return {"pass": name, "file": None, "stats": []}
    ddir = ctx["decision_dir"]
    work = fs.join(ddir, f".{name}-work-{uuid.uuid4().hex[:8]}")
    try:
        return _decide(backend, name, prev_dir, units, ctx, cfg, ddir, work)
    finally:
        fs.remove_tree(work)


def _route_task(ids: list[int], units: list[str], decision, out_dir: str) -> dict[str, int]:
    """Each file's share of a decision written as ``out_dir/<unit>.parquet`` (when it has any); counts by
    reason (removals) or documents (paragraph drops). ``ids``: the files' positions in the pass's paths,
    ``units``: their units."""
    counts: Counter = Counter()
    for i, unit in zip(ids, units):
        t = decision.rows_of(i)
        if "reason" not in t.column_names:
            counts["documents"] += t.num_rows
        elif t.num_rows:
            counts.update(dict(zip(*np.unique(t["reason"].to_numpy(zero_copy_only=False), return_counts=True))))
        if t.num_rows:
            fs.write_parquet_atomic(fs.join(out_dir, f"{unit}.parquet"), t)
    return {str(k): int(v) for k, v in counts.items()}


def _route_to_units(backend: Backend, paths: list[str], unit_of: dict[str, str], decision, out_dir: Path) -> Counter:
    """Split ``decision`` by unit into ``out_dir`` (a task per file group). The units' files are the whole
    decision (:func:`decision_table`): the driver no longer copies every removed document into one file."""
    fs.make_dirs(out_dir)
    counts: Counter = Counter()
    shared = backend.put(decision)
    position = {p: i for i, p in enumerate(paths)}
    calls = (([position[p] for p in g], [unit_of[p] for p in g], shared, out_dir)
             for g in file_groups(paths, cpus=backend_cpus(backend)))
    for c in backend.imap(_route_task, calls):
        counts.update(c)
    return counts


def _decide(backend: Backend, name: str, prev_dir: Path, units: list[str], ctx: dict, cfg: DedupConfig, ddir: Path,
            work: Path) -> dict:
    present = set(fs.list_files(prev_dir, ".parquet"))  # one listing, not a request per unit
    unit_of = {path: u for u in units if (path := fs.join(prev_dir, f"{u}.parquet")) in present}
    stats = FilterStats(f"dedup.{name}.decide")
    if not unit_of:
        return {"pass": name, "file": None, "stats": [stats.as_dict()]}
    paths = survey(backend, list(unit_of))
    if name == "image_url":
        frequent = frequent_image_urls(backend, paths, cfg, work, ctx.get("phash_unit_dir"))
        stats.seen("frequent_image_url", frequent.counts.get("frequent_image_url", 0))
        _route_to_units(backend, paths, unit_of, frequent, fs.join(ddir, "units"))
        return {"pass": name, "file": fs.join(ddir, "units"), "unit_dir": fs.join(ddir, "units"),
                "stats": [stats.as_dict()]}
    if name == "paragraphs":
        drops = paragraph_decision(backend, paths, cfg, work)
        stats.seen("document_with_repeated_paragraph", drops.rows)
        _route_to_units(backend, paths, unit_of, drops, fs.join(ddir, "units"))
        return {"pass": name, "file": fs.join(ddir, "units"), "unit_dir": fs.join(ddir, "units"),
                "stats": [stats.as_dict()]}
    removal = REMOVAL_DECISIONS[name](backend, paths, cfg, work)
    counts = _route_to_units(backend, paths, unit_of, removal, fs.join(ddir, "units"))
    for reason, n in sorted(counts.items()):
        stats.drop("document", reason, n)
    return {"pass": name, "file": fs.join(ddir, "units"), "unit_dir": fs.join(ddir, "units"),
            "stats": [stats.as_dict()]}


def decision_table(decision: dict) -> pa.Table:
    """The whole of a decision from :func:`decide` as one table: every unit's share of a removal, paragraph
    or frequent-image-URL decision (its ``file`` is then the folder of the shares; the frequent URLs' hashes
    once per unit holding them). A decision written before that is one Parquet file."""
    path = decision["file"]
    if path.endswith(".parquet"):
        return fs.read_parquet(path)
    schema = _SCHEMAS[_KIND.get(decision["pass"], "removed")]
    return pa.concat_tables([schema.empty_table()] + [fs.read_parquet(p).select(schema.names).cast(schema)
                                                      for p in fs.list_files(path, ".parquet")])


_KIND = {"paragraphs": "drops", "image_url": "images"}  # other passes: "removed"


def _unit_decision(name: str, decision: dict, unit: str | None):
    """The decision for one unit: its own file under ``unit_dir`` (none: nothing to do), else all of it;
    for the image URLs, the sorted hashes of the frequent ones (those of the unit, or all)."""
    kind = _KIND.get(name, "removed")
    if unit is None or not decision.get("unit_dir"):
        t = decision_table(dict(decision, **{"pass": name}))
    else:
        path = fs.join(decision["unit_dir"], f"{unit}.parquet")
        t = fs.read_parquet(path) if fs.exists(path) else _SCHEMAS[kind].empty_table()
    return np.unique(t["h"].to_numpy()).astype(np.uint64) if name == "image_url" else t


def apply(name: str, table: pa.Table, decision: dict, ctx: dict | None = None) -> tuple[pa.Table, FilterStats]:
    """Apply a decision from :func:`decide` to one unit's documents (a DOCUMENT_SCHEMA table).

    With ``ctx["unit"]`` a worker reads only that unit's share of a removal or paragraph decision, so
    its memory follows the unit, not the dataset.
    """
    cfg = config_of((ctx or {}).get("profile", "default"))
    stats = FilterStats(f"dedup.{name}")
    stats.seen("document", table.num_rows)
    if decision.get("file") is None:
        stats.kept("document", table.num_rows)
        return table, stats
    d = _unit_decision(name, decision, (ctx or {}).get("unit"))
    if name == "image_url":
        table, n = remove_image_nodes(table, d, (ctx or {}).get("phash_canonical") if cfg.image_url.use_phash else None)
        if n:
            stats.drop("image", f"image_url_dedup:seen>{cfg.image_url.max_count}", n)
    elif name == "paragraphs":
        ids = table["doc_id"].combine_chunks()
        mine = d.filter(pc.is_in(d["doc_id"], value_set=ids))
        table, n = apply_paragraph_drops(table, mine, cfg.paragraphs)
        if n:
            stats.drop("paragraph", f"paragraph_dedup:seen>={cfg.paragraphs.min_count}_in_domain", n)
    else:
        hit = pc.fill_null(pc.is_in(table["doc_id"], value_set=d["doc_id"].combine_chunks()), False)
        removed = d.filter(pc.is_in(d["doc_id"], value_set=table["doc_id"].combine_chunks()))
        for item in pc.value_counts(removed["reason"]).to_pylist() if removed.num_rows else []:
            stats.drop("document", item["values"], item["counts"])
        table = table.filter(pc.invert(hit))
    stats.kept("document", table.num_rows)
    return table, stats


def dedup_units(prev_dir: str | Path, units: list[str], profile, work: str | Path, passes: list[str] | None = None,
                ctx: dict | None = None) -> tuple[Path | str, list[dict], list[FilterStats]]:
    """The enabled passes (``passes`` or the profile's ``dedup.order``) over the units' Parquet in
    ``prev_dir``, as a run does them: each decided over all units, then applied to each unit, whose
    output goes to ``work/<NN>-<pass>/<unit>.parquet``. For tests and benchmarks (a run interleaves the
    same two calls with its other stages). Returns (last folder, decisions, per-pass apply stats summed)."""
    cfg = config_of(profile)
    ctx = dict(ctx or {}, profile=profile)
    prev, work = os.fspath(prev_dir), os.fspath(work)
    decisions, stats = [], []
    for i, name in enumerate(passes or cfg.order):
        if not getattr(cfg, name).enabled:
            continue
        ddir = fs.join(work, f"{i:02d}-{name}")
        fs.make_dirs(fs.join(ddir, "decision"))
        decision = decide(name, prev, units, dict(ctx, decision_dir=fs.join(ddir, "decision")))
        decisions.append(decision)
        total = FilterStats(f"dedup.{name}")
        for u in units:
            src = fs.join(prev, f"{u}.parquet")
            if not fs.exists(src):
                continue
            table, st = apply(name, fs.read_parquet(src), decision, dict(ctx, unit=u))
            total.merge(st)
            fs.write_parquet_atomic(fs.join(ddir, f"{u}.parquet"), table)
        stats.append(total)
        prev = ddir
    return (prev if storage.is_remote(prev) else Path(prev)), decisions, stats
