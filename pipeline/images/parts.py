"""One finished img2dataset shard -> one part of the image table.

Its own module because two processes use it: the img2dataset worker that downloaded the shard writes the
part as soon as the shard is done (:mod:`pipeline.images.i2d_worker`), and the parent writes any part left
over (:func:`pipeline.images.download.build_table`).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.images.config import ImagesConfig
from pipeline.images.table import IMAGE_TABLE_SCHEMA, ImageTable, binary_column, make_row

I2D_DIR = "img2dataset"
TABLE_DIR = "table"
HEADERS_DIR = "_headers"


def _final_headers(url: str, log_by_url: dict[str, dict]) -> tuple[dict | None, int | None, str | None]:
    """Follow the redirects logged for ``url``: (headers, status, final URL) of the last response."""
    seen = set()
    entry, current = None, url
    while current in log_by_url and current not in seen and len(seen) < 20:
        seen.add(current)
        entry = log_by_url[current]
        loc = entry.get("location")
        if not (300 <= (entry.get("status") or 0) < 400 and loc):
            break
        current = urllib.parse.urljoin(current, loc)
    if entry is None:
        return None, None, None
    return entry.get("headers") or None, entry.get("status"), current


def read_header_log(shard_parquet: Path) -> dict[str, dict]:
    """The shard's response-header log (``_headers/NNNNN.jsonl``) by URL; empty when there is none."""
    log_path = shard_parquet.parent / HEADERS_DIR / (shard_parquet.stem + ".jsonl")
    log_by_url: dict[str, dict] = {}
    if log_path.exists():
        with open(log_path, encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                log_by_url[e["url"]] = e
    return log_by_url


def _rows_in_url_order(urls: list, statuses: list, errors: list, shas: list, blobs: Iterable,
                       log_by_url: dict[str, dict], cfg: ImagesConfig,
                       pil_read: list | None = None) -> tuple[pa.Table, list[int | None]]:
    """The image-table rows of one shard's samples, sorted by URL, with a null ``bytes`` column, and for each
    row the sample whose bytes it stores (None: no bytes). ``blobs`` yields each sample's bytes in turn;
    ``pil_read[i]``: what PIL already read from sample i's bytes, or None."""
    rows, source = [], []  # source[k]: the sample whose bytes row k stores (None: no bytes)
    for i, (url, blob) in enumerate(zip(urls, blobs)):
        headers, status, final_url = _final_headers(url, log_by_url)
        final_url = final_url if final_url and final_url != url else None
        if statuses[i] == "success":
            # img2dataset hashes the downloaded stream: the stored bytes only when nothing was re-encoded
            sha = shas[i] if not cfg.reencode else None
            row = make_row(url, blob, cfg, http_status=status, headers=headers, final_url=final_url,
                           sha256=sha, source="web", header=pil_read[i] if pil_read else None)
        else:
            err = errors[i] or statuses[i]
            if status is not None and status >= 400 and "HTTP Error" not in err:
                err = f"HTTP Error {status}: {err}"
            row = make_row(url, None, cfg, error=err, http_status=status, headers=headers,
                           final_url=final_url, source="web")
        source.append(i if row["bytes"] is not None else None)
        row["bytes"] = None
        rows.append(row)
    order = sorted(range(len(rows)), key=lambda k: rows[k]["url"])
    table = pa.Table.from_pylist([rows[k] for k in order], schema=IMAGE_TABLE_SCHEMA)
    return table, [source[k] for k in order]


def _with_bytes(table: pa.Table, data: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index("bytes"), IMAGE_TABLE_SCHEMA.field("bytes"), data)


class ShardWithoutBytes(ValueError):
    """A finished img2dataset shard whose successes have no bytes in it: they went only into its table part
    (:func:`pipeline.images.i2d_worker._part_writer`), so the part cannot be rebuilt from the shard."""


def shard_to_table(shard_parquet: Path, cfg: ImagesConfig) -> pa.Table:
    """One finished img2dataset shard (its Parquet and header log) as image-table rows.

    The image bytes are not rebuilt from Python objects: the part's ``bytes`` column is taken from the
    shard's own column (one Arrow ``take`` in URL order), which halves the CPU of this step.
    """
    log_by_url = read_header_log(shard_parquet)
    # one thread, and the system allocator: a worker reads a shard once into fresh memory, where Arrow's
    # threads and mimalloc's fresh segments cost more CPU (mostly the kernel's page faults) than they save
    pool = pa.system_memory_pool()
    t = pq.ParquetFile(shard_parquet, memory_map=True).read(use_threads=False)
    n = t.num_rows
    data_col = cfg.encode_format if cfg.encode_format in t.column_names else None

    def column(name: str) -> list:
        return t.column(name).to_pylist() if name in t.column_names else [None] * n

    if "status" in t.column_names:
        success = pc.equal(t.column("status"), "success")
        if pc.any(pc.and_(success, pc.is_null(t.column(data_col)) if data_col else success)).as_py():
            raise ShardWithoutBytes(f"{shard_parquet}: a success without its bytes in img2dataset's shard (our "
                                    "worker writes them only into the shard's table part, which is missing)")

    # one image's bytes at a time (not the whole column as Python objects): the same memory is reused
    blobs = (v.as_py() for v in t.column(data_col)) if data_col else iter(lambda: None, 0)
    table, picks = _rows_in_url_order(column("url"), column("status"), column("error_message"),
                                      column("sha256"), blobs, log_by_url, cfg)
    if data_col is None or not any(s is not None for s in picks):
        return table
    data = pc.take(t.column(data_col), pa.array(picks, pa.int64()), memory_pool=pool)
    return _with_bytes(table, data.cast(pa.binary()))


# What img2dataset hands its sample writer for one sample, as the worker keeps it: (url, status,
# error_message, sha256, the image bytes or None, (format, width, height) PIL read from them at download or None)
Sample = tuple[str, str, "str | None", "str | None", "bytes | None", "tuple[str, int, int] | None"]


def samples_to_table(samples: list[Sample], shard_parquet: Path, cfg: ImagesConfig,
                     log_by_url: dict[str, dict] | None = None) -> pa.Table:
    """The same table as :func:`shard_to_table`, from the samples the worker handed img2dataset's writer
    (in the order it wrote them) instead of from the shard file: the image bytes are only in the worker's
    memory (img2dataset's shard keeps the metadata). ``log_by_url``: the header log's entries as
    :func:`read_header_log` gives them (None: read from the log file)."""
    table, picks = samples_rows(samples, shard_parquet, cfg, log_by_url)
    if not any(s is not None for s in picks):
        return table
    return _with_bytes(table, binary_column(picks))


def samples_rows(samples: list[Sample], shard_parquet: Path, cfg: ImagesConfig,
                 log_by_url: dict[str, dict] | None = None) -> tuple[pa.Table, list[bytes | None]]:
    """:func:`samples_to_table`'s rows with a null ``bytes`` column, and each row's image bytes apart (in the
    table's order), for :meth:`ImageTable.write_part`'s ``blobs``."""
    urls, statuses, errors, shas, blobs, read = (list(c) for c in zip(*samples)) if samples else ([],) * 6
    if log_by_url is None:
        log_by_url = read_header_log(shard_parquet)
    # what PIL read at download describes the stored bytes only when img2dataset did not re-encode them
    table, picks = _rows_in_url_order(urls, statuses, errors, shas, blobs, log_by_url, cfg,
                                      None if cfg.reencode else read)
    return table, [None if s is None else blobs[s] for s in picks]


def write_shard_part(work_dir: str | Path, shard: str, cfg: ImagesConfig, table_dir: str | None = None,
                     samples: list[Sample] | None = None, log_by_url: dict[str, dict] | None = None,
                     shard_parquet: Path | None = None) -> str:
    """Write the image-table part of one img2dataset shard; returns its path.

    Called in the img2dataset worker that downloaded the shard, once its shard file is closed and before
    img2dataset marks it done, with the ``samples`` it wrote (their bytes are nowhere else) and the header
    log's entries; :func:`build_table` calls it without samples for a shard whose file holds the bytes
    (img2dataset alone, older folders). Samples that do not match the shard's row count (a write that failed
    half-way) are refused: ``ValueError``, and the shard is downloaded again.
    """
    work_dir = Path(work_dir)
    table = ImageTable(table_dir or work_dir / TABLE_DIR)
    shard_parquet = shard_parquet or work_dir / I2D_DIR / f"{shard}.parquet"
    if samples is None:
        return table.write_part(shard, shard_to_table(shard_parquet, cfg))
    rows = pq.ParquetFile(shard_parquet).metadata.num_rows
    if rows != len(samples):
        raise ValueError(f"{shard_parquet}: {rows} rows written but {len(samples)} samples kept")
    return table.write_part(shard, *samples_rows(samples, shard_parquet, cfg, log_by_url))
