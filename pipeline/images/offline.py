"""The offline image source: image ``response`` records inside WARC files serve as the web.

The embedded sample (``make crawl-shard``) and archived crawls carry their images next to their pages;
:func:`warc_image_table` turns those records into the same image table as a download would
(:mod:`pipeline.images.table`), with the same checks and the same reasons, so the merge code does
not know where an image came from and nothing is fetched from the network.
"""

from __future__ import annotations

import io
import logging
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


def warc_image_table(sources: Iterable[str | Path], table_dir: str | Path, cfg: ImagesConfig | None = None,
                     wanted: Iterable[str] | None = None, stats: ReadStats | None = None,
                     located: dict[str, list[ImageLocation]] | None = None) -> ImageTable:
    """Read the image records of ``sources`` (WARC paths or URLs) into the image table at ``table_dir``.

    URLs in ``wanted`` that no record holds get a ``failed`` row with reason ``not_in_warc``, so the
    funnel counts them like failed downloads. A source in ``located`` (its image records' locations,
    found while extracting: :func:`html_records_locating_images`) has only its wanted records read;
    the others are scanned whole. Either way the table is the same.
    """
    from obelics.warc import iter_image_records

    cfg = cfg or ImagesConfig()
    wanted_set = set(wanted) if wanted is not None else None
    located = located or {}

    def records():
        for src in sources:
            try:
                if str(src) in located:
                    yield from located_image_records(src, located[str(src)], wanted_set, stats)
                else:
                    yield from iter_image_records(src, stats=stats)
            except Exception as e:  # noqa: BLE001 - an unreadable input costs its own images only
                log.warning("image records of %s: %s: %s", src, type(e).__name__, e)
                if stats is not None:
                    stats.skip(f"input_error:{type(e).__name__}")

    table = table_from_records(records(), cfg, wanted_set)
    if wanted_set is not None:
        missing = wanted_set - set(table.column("url").to_pylist())
        if missing:
            extra = rows_to_table(make_row(u, None, cfg, reason="not_in_warc", source="warc") for u in missing)
            table = pa.concat_tables([table, extra]).sort_by("url")
    out = ImageTable(table_dir)
    out.write_part("warc", table)
    return out
