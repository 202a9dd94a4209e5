"""The offline image source: image ``response`` records inside WARC files serve as the web.

The embedded sample (``make crawl-shard``) and archived crawls carry their images next to their pages;
:func:`warc_image_table` turns those records into the same image table as a download would
(:mod:`pipeline.images.table`), with the same checks and the same reasons, so the merge code does
not know where an image came from and nothing is fetched from the network.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from obelics.records import HtmlRecord, ImageRecord, ReadStats
from pipeline.images.config import ImagesConfig
from pipeline.images.table import ImageTable, make_row, rows_to_table

log = logging.getLogger("obelics.images")


def disallowed_by_headers(headers: dict[str, str | list[str]], user_agent_token: str | None,
                          directives: Iterable[str]) -> bool:
    """img2dataset's X-Robots-Tag rule (``downloader.is_disallowed``) on a header dict.

    Restated here (eight lines) so that the offline source drops exactly what a download would,
    without importing img2dataset (OpenCV, albumentations) in a run that downloads nothing.
    """
    directives = {d.strip().lower() for d in directives}
    if not directives:
        return False
    token = (user_agent_token or "").strip().lower() or None
    value = next((v for k, v in headers.items() if k.lower() == "x-robots-tag"), None)
    if not value:
        return False
    lines = value if isinstance(value, (list, tuple)) else [value]  # a repeated header: one item per line
    for field in (f for line in lines for f in str(line).split("\n")):
        parts = field.split(":", 1)
        names = [x.strip().lower() for x in parts[-1].split(",")]
        ua = parts[0].strip().lower() if len(parts) == 2 else None
        if (ua is None or ua == token) and any(x in directives for x in names):
            return True
    return False


def row_from_record(rec: ImageRecord, cfg: ImagesConfig) -> dict:
    """One image-table row from a WARC image record (same checks and reasons as a download)."""
    headers = {k.lower(): v for k, v in (rec.http_headers or {}).items()}
    recorded = {k: headers[k] for k in cfg.record_headers if k in headers}
    common = dict(http_status=rec.http_status, headers=recorded, source="warc")
    if rec.http_status is not None and rec.http_status >= 400:
        return make_row(rec.url, None, cfg, error=f"HTTP Error {rec.http_status}", **common)
    if cfg.disallowed_header_directives and disallowed_by_headers(
            headers, cfg.user_agent_token, cfg.disallowed_header_directives):
        return make_row(rec.url, None, cfg, error="Use of image disallowed by X-Robots-Tag directive", **common)
    if cfg.reencode:
        from pipeline.images.reencode import reencode

        data, error = reencode(rec.payload, cfg)
        if error:
            return make_row(rec.url, None, cfg, error=error, **common)
        return make_row(rec.url, data, cfg, **common)
    return make_row(rec.url, rec.payload, cfg, **common)


def table_from_records(records: Iterable[ImageRecord], cfg: ImagesConfig | None = None,
                       wanted: set[str] | None = None) -> pa.Table:
    """Image-table rows for ``records`` (only URLs in ``wanted`` if given; the first success wins)."""
    return rows_to_table(_rows_from_records(records, cfg or ImagesConfig(), wanted).values())


def _rows_from_records(records: Iterable[ImageRecord], cfg: ImagesConfig, wanted: set[str] | None) -> dict[str, dict]:
    """{url: row} of one pass over ``records``: a URL's first success, else its last failure."""
    rows: dict[str, dict] = {}
    for rec in records:
        if wanted is not None and rec.url not in wanted:
            continue
        prev = rows.get(rec.url)
        if prev is not None and prev["status"] == "success":
            continue
        rows[rec.url] = row_from_record(rec, cfg)
    return rows


ImageLocation = tuple[str, int, int]  # (URL, offset, length) of an image record's gzip member in its WARC


def html_records_locating_images(source, config=None, stats: ReadStats | None = None,
                                 found: list[ImageLocation] | None = None) -> Iterator[HtmlRecord]:
    """:func:`obelics.warc.iter_html_records`'s records and counts, noting in ``found`` where each image
    ``response`` record is, so the image table reads those records alone instead of the WARC again.

    The same scan as the reader's (its processor and its gzip member ranges), with one more question per
    record it skips: is it an image response? Its payload is not read here.
    """
    from obelics import warc

    found = found if found is not None else []

    def processor(filename, cfg, st):
        html = warc._html_processor(filename, cfg, st)

        def process(rec, member):
            r = html(rec, member)
            if r is None and rec.rec_type == "response" and rec.http_headers:
                mime, _ = warc._content_type(rec.http_headers)
                if mime.startswith("image/"):  # a marker whose member range the scan fills in
                    return ImageRecord(url=warc._target_uri(rec), payload=b"", content_type=mime, http_status=0)
            return r

        return process

    for r in warc._iter(source, config, stats, processor, None):
        if isinstance(r, ImageRecord):
            found.append((r.url, r.warc_record_offset, r.warc_record_length))
        else:
            yield r


def located_image_records(source, locations: Iterable[ImageLocation], wanted: set[str] | None,
                          stats: ReadStats | None = None) -> Iterator[ImageRecord]:
    """The image records of ``source`` at ``locations`` (those of ``wanted`` URLs), in file order: what
    :func:`obelics.warc.iter_image_records` yields for those URLs, reading only their gzip members."""
    from obelics.warc import iter_image_records, read_record_at, warc_filename_of

    done = set()
    for url, offset, length in sorted(locations, key=lambda x: x[1]):
        if (wanted is not None and url not in wanted) or (offset, length) in done:
            continue
        done.add((offset, length))  # a member holding several records is read once
        data = read_record_at(source, offset, length)
        for rec in iter_image_records(io.BytesIO(data), stats=stats, warc_filename=warc_filename_of(source)):
            rec.warc_record_offset, rec.warc_record_length = offset, length
            yield rec


def _records_of(src, locations: list[ImageLocation], wanted: set[str] | None,
                stats: ReadStats) -> Iterator[ImageRecord]:
    """The image records of one source at ``locations``; an unreadable input costs its own images only (what
    was read before the error is kept)."""
    try:
        yield from located_image_records(src, locations, wanted, stats)
    except Exception as e:  # noqa: BLE001
        log.warning("image records of %s: %s: %s", src, type(e).__name__, e)
        stats.skip(f"input_error:{type(e).__name__}")


LOCATION_SCHEMA = pa.schema([("url", pa.string()), ("offset", pa.int64()), ("length", pa.int64())])
_ROUTED_SCHEMA = pa.schema(list(LOCATION_SCHEMA) + [("_file", pa.int64())])  # _file: the source's index
URLS_PER_PARTITION = 100_000  # wanted URLs a read task gets when they are given as a list (not as files)
RECORD_FILES_PER_TASK = 256   # image-record lists a map task partitions
PART_BYTES = 128 << 20        # image bytes a partition's task holds before it writes them as a part (_PartRows)


def _locations_table(found: Iterable[ImageLocation]) -> pa.Table:
    cols = list(zip(*found)) or [[], [], []]
    return pa.table([pa.array(c, f.type) for c, f in zip(cols, LOCATION_SCHEMA)], schema=LOCATION_SCHEMA)


def _locate_task(src: str, out_path: str) -> ReadStats:
    """One task: a scan of ``src`` noting where its image records are (a source extraction did not locate),
    written to ``out_path`` like an extraction's list; an unreadable input keeps what was found before."""
    from obelics import storage
    from obelics.warc import iter_image_records

    stats = ReadStats()
    found = []
    try:
        for rec in iter_image_records(src, stats=stats):
            found.append((rec.url, rec.warc_record_offset, rec.warc_record_length))
    except Exception as e:  # noqa: BLE001
        log.warning("image records of %s: %s: %s", src, type(e).__name__, e)
        stats.skip(f"input_error:{type(e).__name__}")
    storage.write_parquet_atomic(out_path, _locations_table(found))
    return stats


def _location_rows(t: pa.Table, P: int) -> pa.Table:
    """(url, offset, length, _part) of a batch of image-record locations, by the URL hash of the join."""
    import numpy as np

    from filters.dedup.common import hash64

    part = (hash64(t["url"].to_pylist()) % np.uint64(P)).astype(np.int64) if t.num_rows else np.zeros(0, np.int64)
    return t.select(LOCATION_SCHEMA.names).cast(LOCATION_SCHEMA).append_column("_part", pa.array(part))


class _PartRows:
    """One pass's rows of a partition's records, written as they are decided: a URL's first success is final
    (a later record never replaces it), so successes are written in parts of ``PART_BYTES`` of image bytes
    (``<name>-<k>``; a partition under the budget keeps its one part ``<name>``); failures (no bytes) are held,
    each replaced by a later record of its URL, and written last with the ``not_in_warc`` rows. A URL is in one
    part only. Holds a part's bytes, the partition's failures and the URLs it has settled."""

    def __init__(self, table_dir: str, name: str, cfg: ImagesConfig):
        self.table, self.name, self.cfg = ImageTable(table_dir), name, cfg
        self.done: set[str] = set()
        self.failed: dict[str, dict] = {}
        self.rows: list[dict] = []
        self.bytes = self.parts = self.written = 0

    def add(self, rec: ImageRecord) -> None:
        if rec.url in self.done:
            return
        row = row_from_record(rec, self.cfg)
        if row["status"] != "success":
            self.failed[rec.url] = row
            return
        self.failed.pop(rec.url, None)
        self.done.add(rec.url)
        self.rows.append(row)
        self.bytes += len(row["bytes"])
        if self.bytes >= PART_BYTES:
            self._write()

    def _write(self) -> None:
        if self.rows:
            self.table.write_part(f"{self.name}-{self.parts:04d}", rows_to_table(self.rows))
            self.parts += 1
            self.written += len(self.rows)
        self.rows, self.bytes = [], 0

    def close(self, wanted: list[str] | None) -> int:
        """The last part: the successes left, the failures, and a ``not_in_warc`` row for each URL of
        ``wanted`` no record holds; returns the rows written."""
        self.rows += self.failed.values()
        if wanted is not None:
            self.rows += [make_row(u, None, self.cfg, reason="not_in_warc", source="warc")
                          for u in wanted if u not in self.done and u not in self.failed]
        if self.parts:
            self._write()
        elif self.rows:
            self.table.write_part(self.name, rows_to_table(self.rows))
            self.written += len(self.rows)
        return self.written


def _partition_part(locs, q: int, url_file: str | None, sources, table_dir: str, cfg: ImagesConfig,
                    counted: set[int]) -> tuple[ReadStats, int]:
    """One task: partition ``q``'s part of the table. Its image-record locations (each with its source's index),
    those of the URLs in ``url_file`` (partition ``q``'s distinct wanted URLs; None: every URL), are read
    source by source in source order, each in file order: one pass over every source, so a URL keeps its
    first success, else its last failure; a wanted URL no record holds gets a ``not_in_warc`` row. The rows are
    written as they are decided (:class:`_PartRows`): the task holds ``PART_BYTES`` of image bytes, not its
    partition's. Returns (read counts of the sources in ``counted``, rows written)."""
    import pyarrow.compute as pc

    from pipeline.components import read_rows
    from pipeline.shuffle import shared_value

    sources = shared_value(sources)
    t = read_rows(locs, _ROUTED_SCHEMA)
    wanted = None
    if url_file is not None:
        from obelics import storage

        wanted = storage.read_parquet(url_file, columns=["url"])["url"].combine_chunks()
        if t.num_rows:
            t = t.filter(pc.is_in(t["url"], value_set=wanted))
    keep = set(t["url"].to_pylist())
    by_source: dict[int, list[ImageLocation]] = {}
    for url, offset, length, i in zip(*(t[c].to_pylist() for c in _ROUTED_SCHEMA.names)):
        by_source.setdefault(i, []).append((url, offset, length))
    stats = ReadStats()
    out = _PartRows(table_dir, f"warc-{q:06d}", cfg)
    for i in sorted(by_source):
        for rec in _records_of(sources[i], by_source[i], keep, stats if i in counted else ReadStats()):
            if rec.url in keep:
                out.add(rec)
    return stats, out.close(wanted.to_pylist() if wanted is not None else None)


def _wanted_files(wanted: Iterable[str], work: str) -> tuple[dict[int, str], int]:
    """A list of wanted URLs as the distinct URL files of a run (hash partitions, each sorted): ({q: file}, P)."""
    import math

    import numpy as np

    from filters.dedup.common import hash64
    from obelics import storage

    urls = sorted(set(u for u in wanted if u))
    P = max(1, math.ceil(len(urls) / URLS_PER_PARTITION))
    part = hash64(urls) % np.uint64(P) if urls else np.zeros(0, np.uint64)
    files = {}
    for q in np.unique(part):
        files[int(q)] = path = storage.join(work, f"urls-{int(q):06d}.parquet")
        storage.write_parquet_atomic(path, pa.table({"url": pa.array([u for u, k in zip(urls, part) if k == q],
                                                                      pa.string())}))
    return files, P


def warc_image_table(sources: Iterable[str | Path], table_dir: str | Path, cfg: ImagesConfig | None = None,
                     wanted=None, stats: ReadStats | None = None, located: dict | None = None,
                     use_ray: bool | None = None, dedup=None) -> ImageTable:
    """Read the image records of ``sources`` (WARC paths or URLs) into the image table at ``table_dir``.

    ``wanted``: the URLs to keep (None: all), a list or the run's distinct URLs as files
    (:class:`~pipeline.images.download.UrlFiles`, hash-partitioned); one of them that no record holds gets a
    ``failed`` row with reason ``not_in_warc``, so the funnel counts it like a failed download. ``located``:
    {source: where its image records are, a list of (url, offset, length) or a Parquet file of those}, found
    while extracting (:func:`html_records_locating_images`); a source without is scanned by a task first.

    No URL is held in the driver (beyond a ``wanted`` or ``located`` given as lists): the image-record
    locations, with their source's index, are hash-partitioned by URL like the wanted URLs (``dedup``: the
    shuffle's settings), and the task of partition q reads its wanted URLs' records from every source, in
    source order, then file order, as one pass over every source would (a URL keeps its first success, else
    its last failure), and writes the part ``warc-<q>`` (with its ``not_in_warc`` rows). The table is rebuilt
    whole (an extended run decides again into this folder).
    """
    import functools
    import uuid

    from filters.dedup.config import DedupConfig
    from obelics import storage
    from pipeline import shuffle as fs
    from pipeline.dedup import BATCH_ROWS, FLUSH_BYTES, _partition_task, shuffle_plan
    from pipeline.images.download import UrlFiles
    from pipeline.rounds import IndexBuilder, merge_rounds
    from pipeline.shuffle import get_backend

    cfg = cfg or ImagesConfig()
    dcfg = dedup or DedupConfig()
    table_dir = os.fspath(table_dir)
    located = located or {}
    sources = [str(s) for s in sources]  # each an index, a source given twice too (its failures come last)
    out = ImageTable(table_dir)
    for old in out.parts():
        storage.remove(old)
    backend = get_backend(use_ray)
    work = storage.join(storage.parent(table_dir), f".warc-work-{uuid.uuid4().hex[:8]}")
    fs.make_dirs(work)
    try:
        if isinstance(wanted, UrlFiles) and wanted.partitions:
            url_files, P = dict(zip(wanted.keys, wanted.files)), wanted.partitions
        elif isinstance(wanted, UrlFiles):  # files not partitioned by the join's hash: partitioned here
            from pipeline.images.join import read_url_files

            url_files, P = _wanted_files(read_url_files(wanted.files), storage.join(work, "urls"))
        elif wanted is not None:
            url_files, P = _wanted_files(wanted, storage.join(work, "urls"))
        else:
            url_files, P = None, 1
        # each source's list of locations: given (a file, or a list written here), else found by a scan task
        lists: dict[str, str] = {}
        scans = []
        for i, src in enumerate(sources):
            if src in lists:
                continue
            lists[src] = path = storage.join(work, f"located-{i:06d}.parquet")
            given = located.get(src)
            if isinstance(given, (str, os.PathLike)):
                lists[src] = os.fspath(given)
            elif given is not None:
                storage.write_parquet_atomic(path, _locations_table(given))
            else:
                scans.append((src, path))
        read = ReadStats()
        for st in backend.map(_locate_task, scans) if scans else ():
            read.merge(st)
        counted = {i for i, src in enumerate(sources) if src in located}  # a scan counted its reads already
        paths = [lists[src] for src in sources]
        groups = [list(range(k, min(k + RECORD_FILES_PER_TASK, len(paths))))
                  for k in range(0, len(paths), RECORD_FILES_PER_TASK)]
        plan = shuffle_plan(len(groups), P, dcfg)
        maps = IndexBuilder()
        calls = (([paths[i] for i in g], LOCATION_SCHEMA.names, functools.partial(_location_rows, P=P),
                  fs.join(work, f"map-{k:05d}.arrow"), g, BATCH_ROWS, plan.top, FLUSH_BYTES)
                 for k, g in enumerate(groups))
        for k, (path, labels) in enumerate(backend.imap(_partition_task, calls)):
            maps.add(k, path, labels)
        locs = maps.build()
        if plan.multi:
            locs = merge_rounds(backend, locs, plan, fs.join(work, "merge"), FLUSH_BYTES)
        qs = sorted(url_files) if url_files is not None else [int(q) for q in locs.keys]
        shared = backend.put(sources)
        calls = ((locs.get(q), q, url_files[q] if url_files is not None else None, shared, table_dir, cfg, counted)
                 for q in qs)
        rows = 0
        for st, n in backend.imap(_partition_part, calls):
            read.merge(st)
            rows += n
        if not rows:  # an empty table still has a part
            out.write_part("warc-missing", rows_to_table([]))
    finally:
        fs.remove_tree(work)
    if stats is not None:
        stats.merge(read)
    return ImageTable(table_dir)
