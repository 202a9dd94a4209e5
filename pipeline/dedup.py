"""The global dedup passes on Ray Data: the same pure functions as ``filters.dedup``, partitioned.

Every pass is *decide, then apply*:

- decide: project the few columns a pass needs, hash-partition them by the pass's key (URL, domain,
  image-set key, MinHash band key) into ``dedup.num_partitions`` groups with Ray Data's hash shuffle
  (``groupby(...).map_groups``), and run the pure per-partition decision from ``filters.dedup`` on each
  group. A worker holds one partition of keys, about N / num_partitions rows of a few columns.
- apply: the decision is broadcast through Ray's object store as sorted 64-bit hashes (removed doc_ids;
  (url, warc_filename) pairs; too-frequent image URLs; per-document paragraph hashes to drop), which
  workers on a node share zero-copy, and each block filters or edits its rows. Ray Data's
  ``Dataset.join`` would avoid the broadcast but needs polars, which is not a dependency. The broadcast
  costs 8 bytes per removed document per node; a false removal needs a 64-bit hash collision between
  a removed and a kept doc_id (about removed * kept / 2**64).

The same code runs on a laptop (``ray.init`` local) and on a cluster. Each pass returns its removed
``(doc_id, reason)`` as a dataset, so the run can write it as a side output.

Two entry points: :func:`run_global_dedup` over a ``ray.data.Dataset`` (passes in profile order), and
:func:`decide` / :func:`apply` for the unit-based executor (decision files under ``decision_dir``,
applied unit by unit).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filters.base import FilterStats
from filters.dedup import image_set as image_set_mod
from filters.dedup.common import REMOVED_SCHEMA, hash64, partition_of
from filters.dedup.config import DedupConfig
from filters.dedup.image_url import image_url_hashes, remove_image_nodes, too_frequent
from filters.dedup.minhash import (
    REASON as MINHASH_REASON,
)
from filters.dedup.minhash import (
    MinHasher,
    bucket_edges,
    confirm,
    document_text,
    greedy_removals,
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

log = logging.getLogger("obelics.dedup")

KEY_COLUMNS = ["doc_id", "url", "warc_filename", "capture_date", "images"]
EDGE_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("ra", pa.string()), ("rb", pa.string())])


def config_of(profile) -> DedupConfig:
    if isinstance(profile, DedupConfig):
        return profile
    from obelics.config import load_profile

    return load_profile(profile).section("dedup", DedupConfig)


@contextlib.contextmanager
def shuffle_strategy(cfg: DedupConfig):
    """Run the enclosed (materialised) Ray Data work with the profile's shuffle strategy."""
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    ctx = DataContext.get_current()
    old = ctx.shuffle_strategy
    ctx.shuffle_strategy = ShuffleStrategy(cfg.shuffle_strategy)
    try:
        yield
    finally:
        ctx.shuffle_strategy = old


READ_BLOCK_BYTES = 128 << 20  # Parquet bytes per read task: small units are grouped, big ones read alone


def read_units(paths: list[str]):
    """A dataset over Parquet files (pyarrow inside the tasks).

    Files are grouped into read tasks of about ``READ_BLOCK_BYTES`` (at least 8 tasks when there are
    that many files): one task per small file made a pass over many small units cost ~0.1 s per file in
    task and shuffle overhead, whatever their size.
    """
    import math
    import os

    import ray

    sizes = [os.path.getsize(p) for p in paths]
    n_blocks = min(len(paths), max(8, math.ceil(sum(sizes) / READ_BLOCK_BYTES)))
    per = math.ceil(len(paths) / n_blocks)
    groups = [paths[i : i + per] for i in range(0, len(paths), per)]

    def read(batch: dict) -> pa.Table:
        return pa.concat_tables([pq.read_table(p) for group in batch["paths"] for p in group])

    return ray.data.from_items([{"paths": g} for g in groups], override_num_blocks=len(groups)).map_batches(
        read, batch_size=1, batch_format="numpy")


def _partitioned(ds, key_fn, num_partitions: int, columns: list[str] | None = None):
    """``ds`` (projected on ``columns``) with a ``_part`` column: hash of ``key_fn(batch)`` mod P."""
    def add(batch: pa.Table) -> pa.Table:
        return batch.append_column("_part", pa.array(partition_of(key_fn(batch), num_partitions), pa.int64()))

    if columns:
        ds = ds.select_columns(columns)
    return ds.map_batches(add, batch_format="pyarrow")


def _group_apply(ds, fn, cfg: DedupConfig):
    """``fn`` over each hash partition (all rows with one ``_part``), with the profile's shuffle."""
    from ray.data.context import ShuffleStrategy

    ds.context.shuffle_strategy = ShuffleStrategy(cfg.shuffle_strategy)  # a Dataset keeps its own context
    return ds.groupby("_part", num_partitions=cfg.num_partitions).map_groups(
        lambda t: fn(t.drop_columns(["_part"])), batch_format="pyarrow")


def _pair_strings(t: pa.Table) -> list:
    return pc.binary_join_element_wise(pc.fill_null(t["url"].combine_chunks().cast(pa.string()), ""),
                                       pc.fill_null(t["warc_filename"].combine_chunks().cast(pa.string()), ""),
                                       "\x00").to_pylist()


def _hash_set(removed, key_fn) -> np.ndarray:
    arrays = [hash64(key_fn(t)) for t in _tables(removed)]
    return np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.uint64)


def _drop_rows(ds, hashes: np.ndarray, key_fn):
    """``ds`` without the rows whose ``key_fn`` hash is in ``hashes`` (broadcast once)."""
    import ray

    if len(hashes) == 0:
        return ds
    ref = ray.put(hashes)

    def keep(batch: pa.Table) -> pa.Table:
        hit = np.isin(hash64(key_fn(batch)), ray.get(ref))
        return batch.filter(pa.array(~hit))

    return ds.map_batches(keep, batch_format="pyarrow")


def _doc_ids(t: pa.Table) -> list:
    return t["doc_id"].to_pylist()


# -- deciding ------------------------------------------------------------------------------------
def url_decision(ds, cfg: DedupConfig):
    """Removed (doc_id, reason) of the URL pass, as a dataset."""
    return _group_apply(_partitioned(ds, lambda t: t["url"].to_pylist(), cfg.num_partitions, KEY_COLUMNS),
                        lambda t: url_removals(t, cfg), cfg)


def image_set_decision(ds, cfg: DedupConfig):
    """Older copies of the image-set pass (with url, warc_filename when removing by that pair)."""
    key = cfg.image_set.key
    keyed = _partitioned(ds, lambda t: image_set_mod.image_set_keys(t, key).to_pylist(), cfg.num_partitions,
                         KEY_COLUMNS)
    return _group_apply(keyed, lambda t: image_set_mod.image_set_duplicates(t, cfg), cfg)


def frequent_image_urls(ds, cfg: DedupConfig, canonical: dict[str, str] | None = None) -> np.ndarray:
    """Sorted uint64 hashes of image URLs seen more than ``max_count`` times (Ray count aggregation)."""
    c = cfg.image_url
    canonical = canonical if c.use_phash else None

    P = cfg.num_partitions

    def hashes(batch: pa.Table) -> pa.Table:
        h = image_url_hashes(batch, c.count, canonical)
        return pa.table({"h": pa.array(h, pa.uint64()), "_part": pa.array((h % np.uint64(P)).astype(np.int64))})

    # counted per hash partition (every occurrence of a URL lands in one group)
    hashed = ds.select_columns(["images"]).map_batches(hashes, batch_format="pyarrow")
    frequent = _group_apply(hashed, lambda t: pa.table({"h": pa.array(
        too_frequent(t["h"].to_numpy(), c.max_count), pa.uint64())}), cfg)
    arrays = [t["h"].to_numpy() for t in _tables(frequent)]
    return np.sort(np.concatenate(arrays)).astype(np.uint64) if arrays else np.zeros(0, np.uint64)


def paragraph_decision(ds, cfg: DedupConfig):
    """(doc_id, drop_hashes) of documents holding a paragraph repeated in their domain."""
    pcfg = cfg.paragraphs

    def keys(batch: pa.Table) -> pa.Table:
        k = paragraph_keys(batch, pcfg)
        return k.append_column("_part", pa.array(partition_of(k["domain"].to_pylist(), cfg.num_partitions)))

    cols = ["doc_id", "url", "domain", "texts"] if "domain" in ds.schema().names else ["doc_id", "url", "texts"]
    keyed = ds.select_columns(cols).map_batches(keys, batch_format="pyarrow")
    return _group_apply(keyed, lambda t: duplicated_paragraphs(t, pcfg.min_count), cfg)


def minhash_band_rows(batch: pa.Table, cfg: DedupConfig) -> pa.Table:
    """One row per (document, band): key, doc_id, recency; short documents have none."""
    mh = cfg.minhash
    hasher = MinHasher.from_config(mh)
    texts = [document_text(t) for t in batch["texts"].to_pylist()]
    sigs, nwords = hasher.text_signatures(texts)
    keys = hasher.band_keys(sigs)
    valid = np.flatnonzero(nwords >= max(mh.min_words, 1))
    rows = np.repeat(valid, hasher.bands)
    rec = recency_column(batch, cfg.recency)
    return pa.table({
        "key": pa.array(keys[valid].reshape(-1), pa.uint64()),
        "doc_id": batch["doc_id"].combine_chunks().take(pa.array(rows, pa.int64())),
        "rec": rec.take(pa.array(rows, pa.int64())),
    })


def minhash_partition_edges(rows: pa.Table) -> pa.Table:
    """Candidate edges among the band rows of one partition (bucket heads = most recent)."""
    if rows.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    ids = rows["doc_id"].combine_chunks()
    uniq = pc.unique(ids)
    member = pc.index_in(ids, value_set=uniq).to_numpy()
    first_pos = np.full(len(uniq), -1, np.int64)
    first_pos[member[::-1]] = np.arange(len(member))[::-1]
    rec_u = rows["rec"].combine_chunks().take(pa.array(first_pos))
    prio = recency_rank(rec_u, uniq)
    a, b = bucket_edges(rows["key"].to_numpy(), member, prio[member])
    return pa.table({"a": uniq.take(pa.array(a)), "b": uniq.take(pa.array(b)),
                     "ra": rec_u.take(pa.array(a)), "rb": rec_u.take(pa.array(b))}, schema=EDGE_SCHEMA)


def minhash_decision(ds, cfg: DedupConfig):
    """Removed (doc_id, reason) of the MinHash pass, as a dataset (edges and greedy removal on the driver)."""
    import ray

    mh = cfg.minhash
    P = cfg.num_partitions
    cols = [c for c in ("doc_id", "texts", "warc_filename", "capture_date") if c in ds.schema().names]
    bands = ds.select_columns(cols).map_batches(functools.partial(minhash_band_rows, cfg=cfg), batch_format="pyarrow")
    bands = bands.map_batches(lambda t: t.append_column(
        "_part", pa.array((t["key"].to_numpy() % np.uint64(P)).astype(np.int64))), batch_format="pyarrow")
    edges = pa.concat_tables([EDGE_SCHEMA.empty_table(), *_tables(_group_apply(bands, minhash_partition_edges, cfg))])
    if edges.num_rows == 0:
        return ray.data.from_arrow(REMOVED_SCHEMA.empty_table())
    nodes = pc.unique(pa.concat_arrays([edges["a"].combine_chunks(), edges["b"].combine_chunks()]))
    a = pc.index_in(edges["a"], value_set=nodes).to_numpy()
    b = pc.index_in(edges["b"], value_set=nodes).to_numpy()
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    rec = pa.concat_arrays([edges["ra"].combine_chunks(), edges["rb"].combine_chunks()])
    all_ids = pa.concat_arrays([edges["a"].combine_chunks(), edges["b"].combine_chunks()])
    pos = pc.index_in(nodes, value_set=all_ids).to_numpy()
    node_rec = rec.take(pa.array(pos))
    if mh.verify != "none":  # fetch the candidates' shingles (or signatures) in one more pass
        sets, sigs = _candidate_features(ds, nodes, cfg)
        a, b = confirm(a, b, mh, sets, sigs)
    by = greedy_removals(len(nodes), a, b, recency_rank(node_rec, nodes))
    removed = nodes.filter(pa.array(by >= 0))
    return ray.data.from_arrow(pa.table({"doc_id": removed, "reason": pa.array([MINHASH_REASON] * len(removed))},
                                        schema=REMOVED_SCHEMA))


def _candidate_features(ds, nodes: pa.Array, cfg: DedupConfig):
    import ray

    hasher_cfg = cfg.minhash
    ids_ref = ray.put(nodes)

    def feats(batch: pa.Table) -> pa.Table:
        ids = ray.get(ids_ref)
        mask = pc.is_in(batch["doc_id"], value_set=ids)
        sub = batch.filter(mask)
        h = MinHasher.from_config(hasher_cfg)
        texts = [document_text(t) for t in sub["texts"].to_pylist()]
        flat, off, _ = h.batch_shingles(texts)
        sigs = h.signatures_flat(flat, off)
        sets = [np.unique(flat[off[i]:off[i + 1]]) for i in range(len(texts))]
        return pa.table({"doc_id": sub["doc_id"], "sh": pa.array(sets, pa.list_(pa.uint64())),
                         "sig": pa.array(list(sigs), pa.list_(pa.uint32()))})

    t = pa.concat_tables(_tables(ds.select_columns(["doc_id", "texts"]).map_batches(feats, batch_format="pyarrow")))
    order = pc.index_in(nodes, value_set=t["doc_id"]).to_numpy()
    sh = t["sh"].combine_chunks()
    flat = pc.list_flatten(sh).to_numpy()  # numpy views, no Python ints
    off = sh.offsets.to_numpy()
    sets = [flat[off[i]:off[i + 1]] for i in order]
    sigs = pc.list_flatten(t["sig"].combine_chunks()).to_numpy().reshape(t.num_rows, -1)[order]
    return sets, sigs


def _tables(ds) -> list[pa.Table]:
    import ray

    return [t for t in ray.get(list(ds.to_arrow_refs())) if t.num_rows]


# -- the dataset-level entry point ------------------------------------------------------------------
@dataclass
class PassOutput:
    ds: Any
    removed: Any | None = None  # dataset of (doc_id, reason)
    stats: FilterStats = field(default_factory=lambda: FilterStats("dedup"))


def checkpoint(ds, directory: Path | None):
    """``ds`` executed once: in Ray's object store (``directory`` None) or written as Parquet files under
    ``directory`` (one per block, written then renamed) and read back lazily, so memory stays bounded."""
    import ray

    if directory is None:
        return ds.materialize()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d = str(directory)

    def write(batch: pa.Table) -> pa.Table:
        path = f"{d}/{uuid.uuid4().hex}.parquet"
        pq.write_table(batch, path + ".tmp")
        os.replace(path + ".tmp", path)
        return pa.table({"path": [path], "rows": [batch.num_rows]})

    written = pa.concat_tables(_tables(ds.map_batches(write, batch_format="pyarrow")))
    rows = written["rows"].to_pylist()
    paths = [p for p, r in zip(written["path"].to_pylist(), rows) if r] or written["path"].to_pylist()[:1]
    return read_units(paths) if paths else ray.data.from_items([])


def _count_removed(removed, stats: FilterStats) -> None:
    for t in _tables(removed.select_columns(["reason"])):
        for item in pc.value_counts(t["reason"]).to_pylist():
            stats.drop("document", item["values"], item["counts"])


def run_pass(name: str, ds, cfg: DedupConfig, canonical: dict[str, str] | None = None,
             spill_dir: Path | None = None) -> PassOutput:
    """One pass over a dataset of DOCUMENT_SCHEMA rows (read twice: decide, then apply).

    Without ``spill_dir`` the input and output are materialised in Ray's object store; with it, the
    input is read twice as given and the output is written as Parquet under ``spill_dir/<pass>``.
    """
    with shuffle_strategy(cfg):
        return _run_pass(name, ds, cfg, canonical, None if spill_dir is None else Path(spill_dir) / name)


def _run_pass(name: str, ds, cfg: DedupConfig, canonical: dict[str, str] | None, spill: Path | None,
              ) -> PassOutput:
    import ray

    stats = FilterStats(f"dedup.{name}")
    if spill is None:
        ds = ds.materialize()
    stats.seen("document", ds.count())
    if name in ("url", "minhash", "image_set"):
        decision = {"url": url_decision, "minhash": minhash_decision, "image_set": image_set_decision}[name]
        removed = decision(ds, cfg).materialize()
        if name == "image_set" and cfg.image_set.remove_by == "url_warc":
            pairs = _hash_set(removed, _pair_strings)
            ref = ray.put(pairs)
            removed = ds.select_columns(["doc_id", "url", "warc_filename"]).map_batches(
                lambda t: image_set_mod.removed_table(
                    t["doc_id"].filter(pa.array(np.isin(hash64(_pair_strings(t)), ray.get(ref)))).to_pylist(),
                    image_set_mod.REASON), batch_format="pyarrow").materialize()
            out = _drop_rows(ds, pairs, _pair_strings)
        else:
            out = _drop_rows(ds, _hash_set(removed, _doc_ids), _doc_ids)
    elif name == "image_url":
        frequent = frequent_image_urls(ds, cfg, canonical)
        ref = ray.put(frequent)
        canon = canonical if cfg.image_url.use_phash else None

        def strip(batch: pa.Table) -> pa.Table:
            t, _ = remove_image_nodes(batch, ray.get(ref), canon)
            return t.append_column("_removed", pa.array(_per_row_removed(batch, t)))

        out = checkpoint(ds.map_batches(strip, batch_format="pyarrow"), spill)
        n = out.sum("_removed") if out.count() else 0
        if n:
            stats.drop("image", f"image_url_dedup:seen>{cfg.image_url.max_count}", int(n))
        out = out.drop_columns(["_removed"])
        removed = None
    elif name == "paragraphs":
        drops = pa.concat_tables([DROPS_SCHEMA.empty_table(), *_tables(paragraph_decision(ds, cfg))])
        ref = ray.put(drops)  # only documents that lose a paragraph, with those paragraphs' hashes
        pcfg = cfg.paragraphs

        def edit(batch: pa.Table) -> pa.Table:
            t, n = apply_paragraph_drops(batch, ray.get(ref), pcfg)
            removed = np.zeros(t.num_rows, np.int64)
            if t.num_rows:
                removed[0] = n  # the batch's count, summed below
            return t.append_column("_removed", pa.array(removed))

        out = checkpoint(ds.map_batches(edit, batch_format="pyarrow"), spill)
        n = out.sum("_removed") if out.count() else 0
        if n:
            stats.drop("paragraph", f"paragraph_dedup:seen>={pcfg.min_count}_in_domain", int(n))
        out = out.drop_columns(["_removed"])
        removed = None
    else:
        raise ValueError(f"unknown dedup pass {name!r}")
    if name in ("url", "minhash", "image_set"):
        out = checkpoint(out, spill)
    if removed is not None:
        _count_removed(removed, stats)
    stats.kept("document", out.count())
    return PassOutput(out, removed, stats)


def _per_row_removed(before: pa.Table, after: pa.Table) -> np.ndarray:
    n_before = pc.list_value_length(before["images"]).to_numpy(zero_copy_only=False)
    n_after = pc.list_value_length(after["images"]).to_numpy(zero_copy_only=False)
    return (n_before - n_after).astype(np.int64)


def run_global_dedup(ds, profile="default", stats: list[FilterStats] | None = None, passes: list[str] | None = None,
                     removed_dir: str | Path | None = None, canonical: dict[str, str] | None = None,
                     spill_dir: str | Path | None = None):
    """Run the enabled passes (``passes`` or the profile's ``dedup.order``) over ``ds``; returns the dataset.

    Per-pass stats are appended to ``stats``; removed ``(doc_id, reason)`` rows are written as Parquet
    under ``removed_dir/<pass>/`` when given. With ``spill_dir`` each pass's output is written there as
    Parquet instead of being held in Ray's object store (bounded memory on large inputs).
    """
    cfg = config_of(profile)
    for name in passes or cfg.order:
        if not getattr(cfg, name).enabled:
            continue
        res = run_pass(name, ds, cfg, canonical, spill_dir)
        log.info("dedup.%s: %s", name, json.dumps(res.stats.as_dict()))
        if stats is not None:
            stats.append(res.stats)
        if removed_dir is not None and res.removed is not None:
            res.removed.select_columns(["doc_id", "reason"]).write_parquet(str(Path(removed_dir) / name))
        ds = res.ds
    return ds


# -- the unit-based executor: decisions on disk, applied unit by unit -------------------------------
def decide(name: str, prev_dir: Path, units: list[str], ctx: dict) -> dict:
    """Decide pass ``name`` over the units' Parquet in ``prev_dir``; writes files under ``ctx['decision_dir']``.

    Returns a JSON-able decision: ``{"pass", "file", "stats"}``.
    """
    from pipeline.executor import ensure_ray

    ensure_ray()
    cfg = config_of(ctx.get("profile", "default"))
    with shuffle_strategy(cfg):
        return _decide(name, prev_dir, units, ctx, cfg)


def _decide(name: str, prev_dir: Path, units: list[str], ctx: dict, cfg: DedupConfig) -> dict:
    if not getattr(cfg, name).enabled:  # a disabled pass decides nothing and applies as a no-op
        return {"pass": name, "file": None, "stats": []}
    paths = [str(Path(prev_dir) / f"{u}.parquet") for u in units if (Path(prev_dir) / f"{u}.parquet").exists()]
    ddir = Path(ctx["decision_dir"])
    stats = FilterStats(f"dedup.{name}.decide")
    if not paths:
        return {"pass": name, "file": None, "stats": [stats.as_dict()]}
    ds = read_units(paths)
    if name == "image_url":
        frequent = frequent_image_urls(ds, cfg, ctx.get("phash_canonical"))
        out = ddir / "frequent_image_url_hashes.npy"
        tmp = ddir / ".frequent.tmp.npy"
        np.save(tmp, frequent)
        tmp.replace(out)
        stats.seen("frequent_image_url", len(frequent))
        return {"pass": name, "file": str(out), "stats": [stats.as_dict()]}
    if name == "paragraphs":
        table = pa.concat_tables([DROPS_SCHEMA.empty_table(), *_tables(paragraph_decision(ds, cfg))])
        stats.seen("document_with_repeated_paragraph", table.num_rows)
        out = ddir / "paragraph_drops.parquet"
    else:
        fn = {"url": url_decision, "image_set": image_set_decision, "minhash": minhash_decision}[name]
        tables = _tables(fn(ds, cfg))
        table = pa.concat_tables(tables, promote_options="default") if tables else REMOVED_SCHEMA.empty_table()
        if name == "image_set" and cfg.image_set.remove_by == "url_warc" and table.num_rows:
            keys = pa.concat_tables(_tables(ds.select_columns(["doc_id", "url", "warc_filename"])))
            table = image_set_mod.expand_url_warc(keys, table)
        table = table.select(["doc_id", "reason"])
        for item in pc.value_counts(table["reason"]).to_pylist() if table.num_rows else []:
            stats.drop("document", item["values"], item["counts"])
        out = ddir / "removed.parquet"
    tmp = ddir / f".{out.name}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out)
    return {"pass": name, "file": str(out), "stats": [stats.as_dict()]}


@functools.lru_cache(maxsize=4)
def _load_decision(path: str):
    if path.endswith(".npy"):
        return np.load(path)
    return pq.read_table(path)


def apply(name: str, table: pa.Table, decision: dict, ctx: dict | None = None) -> tuple[pa.Table, FilterStats]:
    """Apply a decision from :func:`decide` to one unit's documents (a DOCUMENT_SCHEMA table)."""
    cfg = config_of((ctx or {}).get("profile", "default"))
    stats = FilterStats(f"dedup.{name}")
    stats.seen("document", table.num_rows)
    if decision.get("file") is None:
        stats.kept("document", table.num_rows)
        return table, stats
    d = _load_decision(decision["file"])
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
