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
    cfg = cfg or ImagesConfig()
    rows: dict[str, dict] = {}
    for rec in records:
        if wanted is not None and rec.url not in wanted:
            continue
        prev = rows.get(rec.url)
        if prev is not None and prev["status"] == "success":
            continue
        rows[rec.url] = row_from_record(rec, cfg)
    return rows_to_table(rows.values())


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


def _records_of(src, locations: list[ImageLocation] | None, wanted: set[str] | None,
                stats: ReadStats) -> Iterator[ImageRecord]:
    """The image records of one source: by location when given, else a scan; an unreadable input costs its
    own images only (what was read before the error is kept)."""
    from obelics.warc import iter_image_records

    try:
        if locations is not None:
            yield from located_image_records(src, locations, wanted, stats)
        else:
            yield from iter_image_records(src, stats=stats)
    except Exception as e:  # noqa: BLE001
        log.warning("image records of %s: %s: %s", src, type(e).__name__, e)
        stats.skip(f"input_error:{type(e).__name__}")


def _source_part(src: str, name: str, table_dir: str, cfg: ImagesConfig, locations: list[ImageLocation] | None,
                 wanted) -> tuple[ReadStats, list[str], list[bool]]:
    """One task: the image records of one source into the table part ``name`` (the first success of a URL
    wins, else its last failure, as over all sources); returns (read counts, the part's URLs, success of
    each). ``wanted``: the URLs to keep (None: all), possibly a shared object."""
    from pipeline.shuffle import shared_value

    wanted = shared_value(wanted)
    stats = ReadStats()
    table = table_from_records(_records_of(src, locations, wanted, stats), cfg, wanted)
    ImageTable(table_dir).write_part(name, table)
    return stats, table.column("url").to_pylist(), [s == "success" for s in table.column("status").to_pylist()]


def _drop_urls(part: str, urls: list[str]) -> None:
    """One task: rewrite a table part without the rows of ``urls`` (another source's row wins for them)."""
    import pyarrow.compute as pc

    from obelics import storage

    t = storage.read_parquet(part)
    keep = pc.invert(pc.is_in(t.column("url"), pa.array(urls, pa.string())))
    name = storage.basename(part)[len("part-"):-len(".parquet")]
    ImageTable(storage.parent(part)).write_part(name, t.filter(keep).replace_schema_metadata(None))


def warc_image_table(sources: Iterable[str | Path], table_dir: str | Path, cfg: ImagesConfig | None = None,
                     wanted: Iterable[str] | None = None, stats: ReadStats | None = None,
                     located: dict[str, list[ImageLocation]] | None = None,
                     use_ray: bool | None = None) -> ImageTable:
    """Read the image records of ``sources`` (WARC paths or URLs) into the image table at ``table_dir``.

    URLs in ``wanted`` that no record holds get a ``failed`` row with reason ``not_in_warc``, so the
    funnel counts them like failed downloads. A source in ``located`` (its image records' locations,
    found while extracting: :func:`html_records_locating_images`) has only its wanted records read;
    the others are scanned whole. Either way the table is the same.

    Each source is read by a task of its own (on Ray with ``use_ray``, else in this process, in turn:
    :func:`pipeline.shuffle.get_backend`) that writes its part; the driver only holds URLs: it names, for a
    URL in several sources, the row that wins (the first success, else the last failure, in source order,
    as one pass over all sources would), has the other parts rewritten without it, and writes the
    ``not_in_warc`` rows. The rows are those of one pass over every source.
    """
    from obelics import storage
    from pipeline.shuffle import get_backend

    cfg = cfg or ImagesConfig()
    table_dir = os.fspath(table_dir)
    wanted_set = set(wanted) if wanted is not None else None
    located = located or {}
    sources = [str(s) for s in sources]  # one task each, a source given twice too (its failures come last)
    out = ImageTable(table_dir)
    for old in out.parts():  # the table is rebuilt whole (an extended run decides again into this folder)
        storage.remove(old)
    backend = get_backend(use_ray)
    shared = None
    calls = []
    for i, src in enumerate(sources):
        locations = located.get(src)
        if locations is not None:  # the task gets its own wanted URLs only
            locations = [loc for loc in locations if wanted_set is None or loc[0] in wanted_set]
            mine = None if wanted_set is None else {loc[0] for loc in locations}
            calls.append((src, f"warc-{i:05d}", table_dir, cfg, locations, mine))
        else:
            if shared is None:
                shared = backend.put(wanted_set)
            calls.append((src, f"warc-{i:05d}", table_dir, cfg, None, shared))
    results = backend.map(_source_part, calls) if calls else []
    winner: dict[str, tuple[int, bool]] = {}  # url -> (source index, success) of the row that stays
    for i, (st, urls, ok) in enumerate(results):
        if stats is not None:
            stats.merge(st)
        for url, success in zip(urls, ok):
            prev = winner.get(url)
            if prev is None or not prev[1]:  # a failure gives way to any later row; a success stays
                winner[url] = (i, success)
    losers: dict[int, list[str]] = {}
    for i, (_st, urls, _ok) in enumerate(results):
        for url in urls:
            if winner[url][0] != i:
                losers.setdefault(i, []).append(url)
    if losers:
        backend.map(_drop_urls, [(out.part_path(f"warc-{i:05d}"), urls) for i, urls in sorted(losers.items())])
    missing = sorted(wanted_set - winner.keys()) if wanted_set is not None else []
    if missing or not results:
        out.write_part("warc-missing", rows_to_table(make_row(u, None, cfg, reason="not_in_warc", source="warc")
                                                     for u in missing))
    return ImageTable(table_dir)
