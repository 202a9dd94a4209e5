"""Each unit's rows of the image table, found by a shuffle join on the dedup engine (:mod:`pipeline.dedup`).

A unit's ops (the merge, the image and NSFW filters, opt-out) need the image-table rows of the unit's
image URLs. Looked up from the table itself, every unit task opened every part (a part's URL range spans
most of the URL space on a real crawl): units x parts footer reads, ~49 billion at one snapshot. Here the
lookup is a join, done once by the image-table decision:

- the units' image URLs, keyed by the URL's 64-bit hash, are hash-partitioned with the file they come from
  (:func:`wanted_urls`; the same map files also give the distinct URLs to fetch, :func:`distinct_urls`);
- the table's rows, without their bytes and with where they are (``part``, ``row``), are partitioned by
  the same hash, a map task per few parts (:func:`table_rows`); the tasks count the rows by reason too;
- the reduce task of partition q picks, for each URL, the row :meth:`ImageTable.lookup` would return (the
  first success in part then row order, else the first row), joins it (and, with pHash clusters, the URL's
  canonical URL, partitioned the same way by :mod:`pipeline.images.phash_tasks`) to the (URL, file) pairs
  wanting it, and routes the rows back to their files like a dedup decision (:class:`pipeline.dedup.Routed`);
- one Parquet per unit (``units/<unit>.parquet``) is written by tasks: the unit's rows, nothing else.

A unit task then reads one small file (:class:`UnitImages`); the bytes, where an op needs them, are read
from the parts its rows name, row groups holding its rows only. The driver holds the files' indexes and
counts, never a URL.
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.dedup.common import hash64
from filters.dedup.config import DedupConfig
from obelics import storage
from pipeline import shuffle as fs
from pipeline.components import read_batches, read_rows, write_partitioned
from pipeline.dedup import (
    BATCH_ROWS,
    FLUSH_BYTES,
    Routed,
    _partition_task,
    _RoutedResults,
    backend_cpus,
    file_groups,
    route_plan,
    shuffle_plan,
)
from pipeline.images.download import UrlFiles
from pipeline.images.table import IMAGE_TABLE_SCHEMA, META_COLUMNS, ImageRows, ImageTable, reason_counts
from pipeline.rounds import GroupedWriter, Index, IndexBuilder, drop_part, merge_rounds
from pipeline.shuffle import Backend, shared_value

UNIT_DIR = "units"  # under the decision folder: one Parquet of image-table rows per unit
LOCATION = [("part", pa.string()), ("row", pa.int64())]  # where a row's bytes are: part file name, row in it
UNIT_ROWS_SCHEMA = pa.schema([IMAGE_TABLE_SCHEMA.field(c) for c in META_COLUMNS] + LOCATION
                             + [("canonical", pa.string())])
WANTED_SCHEMA = pa.schema([("url", pa.string()), ("_file", pa.int64())])
CANONICAL_SCHEMA = pa.schema([("url", pa.string()), ("canonical", pa.string())])
TABLE_PARTS_PER_TASK = 8  # image-table parts a map task reads the rows (not the bytes) of


def _partition(urls) -> np.ndarray:
    return hash64(urls)


# -- the units' side --------------------------------------------------------------------------------
def _wanted_rows(t: pa.Table, P: int) -> pa.Table:
    """(url, _part) of every image URL of a batch of document rows (duplicates kept: the reduce drops them)."""
    urls = pc.drop_null(pc.list_flatten(t["images"])) if t.num_rows else pa.array([], pa.string())
    urls = urls.filter(pc.not_equal(urls, "")) if len(urls) else urls
    h = hash64(urls.to_pylist())
    return pa.table({"url": urls.cast(pa.string()), "_part": pa.array((h % np.uint64(P)).astype(np.int64))})


def wanted_urls(backend: Backend, paths: list[str], P: int, cfg: DedupConfig, work: str) -> Index:
    """The units' image URLs with their file's position in ``paths``, hash-partitioned into ``P`` partitions
    under ``work`` (map tasks over file groups, merge rounds when the plan says so)."""
    fs.make_dirs(work)
    index = {p: i for i, p in enumerate(paths)}
    groups = file_groups(paths, cpus=backend_cpus(backend))
    plan = shuffle_plan(len(groups), P, cfg)
    maps = IndexBuilder()
    calls = ((g, ["images"], functools.partial(_wanted_rows, P=P), fs.join(work, f"map-{i:05d}.arrow"),
              [index[p] for p in g], BATCH_ROWS, plan.top, FLUSH_BYTES) for i, g in enumerate(groups))
    for i, (path, labels) in enumerate(backend.imap(_partition_task, calls)):
        maps.add(i, path, labels)
    locs = maps.build()
    return merge_rounds(backend, locs, plan, fs.join(work, "merge"), FLUSH_BYTES) if plan.multi else locs


def _distinct_task(locs, q: int, out_path: str) -> tuple[int, str | None, int]:
    """Partition ``q``'s distinct URLs, sorted, as one Parquet file."""
    urls = pc.unique(drop_part(read_batches(locs))["url"].combine_chunks())
    if not len(urls):
        return q, None, 0
    urls = urls.take(pc.sort_indices(urls))
    fs.write_parquet_atomic(out_path, pa.table({"url": urls}))
    return q, out_path, len(urls)


def distinct_urls(backend: Backend, wanted: Index, out_dir: str) -> tuple[list[str], int]:
    """The distinct image URLs of the units as files (one per non-empty partition, each sorted), a task per
    partition; returns (files, how many URLs)."""
    fs.make_dirs(out_dir)
    calls = ((wanted.group(g), int(wanted.keys[g]), fs.join(out_dir, f"urls-{int(wanted.keys[g]):06d}.parquet"))
             for g in range(len(wanted)))
    files, n = [], 0
    for _q, path, k in backend.imap(_distinct_task, calls):
        if path:
            files.append(path)
            n += k
    return files, n


def url_files(files: list[str], n: int, P: int) -> UrlFiles:
    """:func:`distinct_urls`'s files as the fetch takes them (:class:`~pipeline.images.download.UrlFiles`), in
    partition order, each keyed by its partition (the number in its name): the driver hands the fetch the
    files, never the URLs."""
    keyed = sorted((int(storage.basename(f)[len("urls-"):-len(".parquet")]), f) for f in files)
    return UrlFiles(tuple(f for _, f in keyed), n, P, tuple(q for q, _ in keyed))


def read_url_files(files: Iterable[str]) -> Iterable[str]:
    """The URLs of :func:`distinct_urls`'s files, one file at a time."""
    for f in files:
        yield from fs.read_parquet(f, columns=["url"])["url"].to_pylist()


# -- the table's side -------------------------------------------------------------------------------
def _table_map_task(parts: list[str], P: int, out_path: str, bounds: np.ndarray | None):
    """The rows of a few image-table parts without their bytes, with ``part`` (the part's file name) and
    ``row`` (its position in the part), partitioned by URL hash into one IPC file; returns (path, labels,
    the rows' reason counts as :meth:`ImageTable.counts` counts them, each part's row groups)."""
    out = GroupedWriter(out_path, FLUSH_BYTES)
    counts: Counter = Counter()
    groups: dict[str, int] = {}
    try:
        for path in parts:
            name = storage.basename(path)
            f = fs.parquet_file(path)
            groups[path] = f.metadata.num_row_groups
            row = 0
            for b in f.iter_batches(batch_size=BATCH_ROWS, columns=META_COLUMNS):
                t = pa.Table.from_batches([b]).replace_schema_metadata(None)
                n = t.num_rows
                if not n:
                    continue
                counts.update(reason_counts(t))
                t = t.append_column("part", pa.array([name] * n, pa.string()))
                t = t.append_column("row", pa.array(np.arange(row, row + n, dtype=np.int64)))
                row += n
                part = (_partition(t["url"].to_pylist()) % np.uint64(P)).astype(np.int64)
                out.add_partitioned(t, part, bounds)
        path, labels = out.close()
        return path, labels, dict(counts), groups
    finally:
        out.abort()


def table_rows(backend: Backend, table: ImageTable, P: int, cfg: DedupConfig,
               work: str) -> tuple[Index, Counter, dict[str, int]]:
    """The table's rows (no bytes) hash-partitioned like :func:`wanted_urls`; the rows by reason; each part's
    row groups (read by the tasks with the footers they open anyway: the pHash tasks are cut by row group)."""
    fs.make_dirs(work)
    parts = table.parts()
    groups = [parts[i:i + TABLE_PARTS_PER_TASK] for i in range(0, len(parts), TABLE_PARTS_PER_TASK)]
    plan = shuffle_plan(len(groups), P, cfg)
    maps = IndexBuilder()
    counts: Counter = Counter()
    row_groups: dict[str, int] = {}
    calls = ((g, P, fs.join(work, f"table-{i:05d}.arrow"), plan.top) for i, g in enumerate(groups))
    for i, (path, labels, c, rg) in enumerate(backend.imap(_table_map_task, calls)):
        maps.add(i, path, labels)
        counts.update(c)
        row_groups.update(rg)
    locs = maps.build()
    if plan.multi:
        locs = merge_rounds(backend, locs, plan, fs.join(work, "merge"), FLUSH_BYTES)
    return locs, counts, row_groups


# -- the join -------------------------------------------------------------------------------------
def pick_rows(t: pa.Table) -> pa.Table:
    """One row per URL of table rows (with ``part``, ``row``): the row :meth:`ImageTable.lookup` returns, the
    first success in (part, row) order, else the first row; sorted by URL."""
    if not t.num_rows:
        return t
    t = t.append_column("_fail", pc.cast(pc.not_equal(pc.fill_null(t["status"], ""), "success"), pa.int8()))
    t = t.sort_by([("url", "ascending"), ("_fail", "ascending"), ("part", "ascending"), ("row", "ascending")])
    urls = t["url"].combine_chunks()
    first = np.ones(len(urls), bool)
    if len(urls) > 1:
        first[1:] = pc.not_equal(urls[1:], urls[:-1]).to_numpy(zero_copy_only=False)
    return t.filter(pa.array(first)).drop_columns(["_fail"])


def _join_task(locs, q: int, tables, canon, out_path: str, bounds: np.ndarray | None):
    """Partition ``q``: each (URL, file) wanted gets its URL's table row (and canonical URL), routed back to
    its file. Returns (q, path, files, {"rows": n})."""
    wanted = read_rows(locs, WANTED_SCHEMA)
    rows = pick_rows(read_rows(shared_value(tables).get(q), _TABLE_ROWS_SCHEMA))
    if not wanted.num_rows or not rows.num_rows:
        return q, None, np.zeros(0, np.int64), {}
    pos = pc.index_in(wanted["url"], value_set=rows["url"].combine_chunks())
    has = pc.is_valid(pos)
    pairs = np.unique(np.stack([wanted["_file"].to_numpy()[has.to_numpy(zero_copy_only=False)],
                                pos.drop_null().to_numpy().astype(np.int64)], 1), axis=0)
    if not len(pairs):
        return q, None, np.zeros(0, np.int64), {}
    out = rows.take(pa.array(pairs[:, 1]))
    c = read_rows((shared_value(canon).get(q) if canon is not None else None), CANONICAL_SCHEMA)
    if c.num_rows:
        cpos = pc.index_in(out["url"], value_set=c["url"].combine_chunks())
        out = out.append_column("canonical", c["canonical"].combine_chunks().take(cpos))
    else:
        out = out.append_column("canonical", pa.nulls(out.num_rows, pa.string()))
    path, labels = write_partitioned(out.select(UNIT_ROWS_SCHEMA.names).cast(UNIT_ROWS_SCHEMA), pairs[:, 0],
                                     out_path, bounds)
    return q, path, labels, {"rows": out.num_rows}


_TABLE_ROWS_SCHEMA = pa.schema([IMAGE_TABLE_SCHEMA.field(c) for c in META_COLUMNS] + LOCATION)


class _UnitRows(Routed):
    def rows_of(self, file_id: int) -> pa.Table:
        locs = self.locs.get(file_id)
        return read_batches(locs).select(UNIT_ROWS_SCHEMA.names) if locs else UNIT_ROWS_SCHEMA.empty_table()


def _unit_files_task(ids: list[int], units: list[str], routed, out_dir: str) -> int:
    """Each file's rows as ``out_dir/<unit>.parquet``, sorted by URL (written even when empty: a unit reads
    its file without asking first whether it exists)."""
    n = 0
    for i, unit in zip(ids, units):
        t = shared_value(routed).rows_of(i)
        t = t.sort_by("url") if t.num_rows else t
        fs.write_parquet_atomic(fs.join(out_dir, f"{unit}.parquet"), t)
        n += t.num_rows
    return n


def join_units(backend: Backend, paths: list[str], unit_of: dict[str, str], wanted: Index, tables: Index,
               canonical: Index | None, P: int, cfg: DedupConfig, out_dir: str, work: str) -> int:
    """Write each unit's image-table rows to ``out_dir/<unit>.parquet`` (the join of ``wanted`` and
    ``tables``, both partitioned into ``P``); returns the rows written."""
    rdir = fs.join(work, "routed")
    fs.make_dirs(rdir)
    fs.make_dirs(out_dir)
    route = route_plan(P, paths, cfg)
    res = _RoutedResults()
    shared_tables = backend.put(tables)
    shared_canon = backend.put(canonical) if canonical is not None and len(canonical) else None
    calls = ((wanted.group(g), int(wanted.keys[g]), shared_tables, shared_canon,
              fs.join(rdir, f"rows-{int(wanted.keys[g]):06d}.arrow"), route.top) for g in range(len(wanted)))
    for r in backend.imap(_join_task, calls):
        res.add(r)
    locs = res.builder.build()
    if route.multi:
        locs = merge_rounds(backend, locs, route, fs.join(work, "route-merge"), FLUSH_BYTES)
    routed = backend.put(_UnitRows(locs, dict(res.counts), "image_rows"))
    position = {p: i for i, p in enumerate(paths)}
    calls = (([position[p] for p in g], [unit_of[p] for p in g], routed, out_dir)
             for g in file_groups(paths, cpus=backend_cpus(backend)))
    return sum(backend.imap(_unit_files_task, calls))


def new_work(ddir: str, name: str) -> str:
    return fs.join(ddir, f".{name}-work-{uuid.uuid4().hex[:8]}")


# -- a unit's side ----------------------------------------------------------------------------------
UNIT_BYTES_CACHE = 64 << 20  # a unit op's image bytes kept for the unit's next consumer (image_filters, then NSFW)


class UnitImages(ImageRows):
    """One unit's image-table rows (``units/<unit>.parquet`` of the image-table decision), with the lookups of
    :class:`~pipeline.images.table.ImageTable` over them: a unit task reads its file, and for bytes the row
    groups of the parts that hold its rows, never another part.

    ``cache_bytes``: up to that many bytes of images read are kept, so a later lookup of the same URLs (the
    fused stage's NSFW after its image filters) takes them instead of reading the parts again; past the
    budget, bytes are read again as without it. A row's bytes never change, so what it returns is the same."""

    def __init__(self, table_dir: str, path: str | list[str], cache_bytes: int = 0):
        self.table_dir, self.path = table_dir, path
        self._rows: dict[str, dict] | None = None
        self.cache_bytes, self._cache, self._cached = cache_bytes, {}, 0

    def rows(self) -> dict[str, dict]:
        """{url: row} of the unit (``META_COLUMNS``, ``part``, ``row``, ``canonical``); of several units when
        ``path`` lists their files (a writer's task: a URL of two units has the same row in both)."""
        if self._rows is None:
            self._rows = {}
            for path in [self.path] if isinstance(self.path, str) else self.path:
                try:
                    t = fs.read_parquet(path)
                except FileNotFoundError:  # a unit without documents at the decision
                    continue
                self._rows.update((r["url"], r) for r in t.to_pylist())
        return self._rows

    def canonical(self) -> dict[str, str]:
        """{url: canonical url} of the unit's URLs in a pHash cluster."""
        return {u: r["canonical"] for u, r in self.rows().items() if r.get("canonical") is not None}

    def lookup(self, urls: Iterable[str], with_bytes: bool = True) -> dict[str, dict]:
        """As :meth:`ImageTable.lookup` for the unit's URLs (a URL the unit does not hold is not found)."""
        rows = self.rows()
        hits = {u: rows[u] for u in {u for u in urls if u} if u in rows}
        out = {u: {c: r[c] for c in META_COLUMNS} for u, r in hits.items()}
        if with_bytes and out:
            blobs = self._cached_bytes(hits)
            for u, row in out.items():
                row["bytes"] = blobs.get(u)
        return {u: ({c: r.get(c) for c in IMAGE_TABLE_SCHEMA.names} if with_bytes else r) for u, r in out.items()}

    def _cached_bytes(self, hits: dict[str, dict]) -> dict[str, bytes | None]:
        """The bytes of ``hits`` ({url: row}): those kept by an earlier lookup, the others read (and kept while
        the budget allows)."""
        cache = self._cache
        blobs = {u: cache[u] for u in hits if u in cache}
        read = self._bytes([(r["part"], r["row"], u) for u, r in hits.items() if u not in blobs])
        for u, b in read.items():
            n = len(b) if b is not None else 0
            if self.cache_bytes and self._cached + n <= self.cache_bytes:
                cache[u] = b
                self._cached += n
        blobs.update(read)
        return blobs

    def _bytes(self, where: list[tuple[str, int, str]]) -> dict[str, bytes | None]:
        """The bytes at (part, row) of each URL: per part, only the row groups holding those rows."""
        by_part: dict[str, list[tuple[int, str]]] = {}
        for part, row, url in where:
            by_part.setdefault(part, []).append((row, url))
        out: dict[str, bytes | None] = {}
        for part, items in sorted(by_part.items()):
            f = fs.parquet_file(fs.join(self.table_dir, part))
            md = f.metadata
            starts = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
            rows = np.array([r for r, _ in items], np.int64)
            groups = np.searchsorted(starts, rows, "right") - 1
            for g in np.unique(groups):
                col = f.read_row_group(int(g), columns=["bytes"])["bytes"]
                for (row, url), gg in zip(items, groups):
                    if gg == g:
                        out[url] = col[int(row - starts[g])].as_py()
        return out


def table_dir_of(images: str | dict | None) -> str | None:
    """The image table's folder of what a run hands its writers (:func:`images_for`)."""
    return images.get("table_dir") if isinstance(images, dict) else images


def images_for(images: str | dict | None, unit_files: Iterable[str] | None = None):
    """What a writer's task looks image rows up in. ``images``: the image-table decision's folders
    (``{"table_dir", "unit_dir"}``), a table folder (a decision made before the join), or None (no images).
    With the join's per-unit rows and ``unit_files`` (the final Parquet files, ``<unit>.parquet``, its documents
    come from): those units' rows, so a shard task never reads every part's footer (shards x parts at a
    snapshot); else the whole table (:class:`ImageTable`)."""
    table_dir = table_dir_of(images)
    if not table_dir:
        return None
    unit_dir = images.get("unit_dir") if isinstance(images, dict) else None
    if unit_dir and unit_files is not None:
        units = sorted({f.rsplit("/", 1)[-1].removesuffix(".parquet") for f in unit_files})
        return UnitImages(table_dir, [storage.join(unit_dir, f"{u}.parquet") for u in units])
    return ImageTable(table_dir)
