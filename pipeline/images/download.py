"""Image download: the unique image URLs of a whole run, fetched by img2dataset, into the image table.

:func:`download_images` writes the sorted unique URL list once (``urls.parquet``), calls
``img2dataset.download`` on it (Parquet output, sha256, X-Robots-Tag directives on, retries and
timeout from the profile, ``incremental_mode="incremental"``: a shard whose ``_stats.json`` exists is
not fetched again), then turns each finished img2dataset shard into one part of the image table
(:mod:`pipeline.images.table`). A rerun after a kill downloads only the unfinished shards.

By default nothing is re-encoded (``disable_all_reencoding``): the stored bytes are the bytes the server
sent, in their own format (GIF, PNG, WebP... survive), and width, height and format come from PIL's
header parse. ``reencode: true`` (the ``obelics-2023`` profile) lets img2dataset decode and re-encode
every image to JPEG 95 with ``resize_mode="no"``, as the original build did.

What img2dataset's API cannot do, and how we add it without rewriting its downloader: it builds its
own User-Agent (a Firefox string plus ``(compatible; TOKEN; +img2dataset URL)``) and keeps no response
headers. ``pipeline.images.i2d_worker.ObelicsDownloader`` (a subclass of its ``Downloader``, put in place only for the
duration of our call) installs, in each worker process, a urllib handler that replaces the User-Agent
with the profile's and appends the response headers opt-out needs (``X-Robots-Tag``,
``TDM-Reservation``...) of every response, redirects included, to a per-shard JSON-lines log, which
the table joins back by URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from obelics import storage
from obelics.parquet import write_table_atomic
from obelics.storage import write_text_atomic
from pipeline.images.config import ImagesConfig
from pipeline.images.table import IMAGE_TABLE_SCHEMA, ImageTable, make_row

log = logging.getLogger(__name__)

URLS_FILE = "urls.parquet"
I2D_DIR = "img2dataset"
TABLE_DIR = "table"
HEADERS_DIR = "_headers"


# albumentations (imported by img2dataset) asks PyPI for updates on import unless told not to
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def unique_urls(tables_or_lists: Iterable) -> list[str]:
    """Sorted unique image URLs across document tables (``images`` column) and/or plain URL iterables."""
    seen: set[str] = set()
    for item in tables_or_lists:
        if isinstance(item, pa.Table):
            for images in item.column("images").to_pylist():
                seen.update(u for u in images or () if u)
        elif isinstance(item, (str, os.PathLike)) and str(item).endswith(".parquet"):
            for images in pq.read_table(item, columns=["images"]).column("images").to_pylist():
                seen.update(u for u in images or () if u)
        elif isinstance(item, (str, os.PathLike)):  # a path, never a list of URLs (its characters are not)
            hint = " (a WARC's images: --warc)" if ".warc" in str(item) else ""
            raise ValueError(f"{item}: not a document Parquet file{hint}")
        else:
            seen.update(u for u in item if u)
    return sorted(seen)


@contextlib.contextmanager
def _our_downloader(cfg: ImagesConfig, allow: list[str] | None = None, work_dir: Path | None = None):
    import img2dataset  # noqa: F401 - its package binds `main` to the function, so go through sys.modules

    i2d_main = sys.modules["img2dataset.main"]
    from pipeline.images.i2d_worker import PENDING, ObelicsDownloader

    cls = ObelicsDownloader
    original, original_signal = i2d_main.Downloader, i2d_main.signal
    PENDING.update(user_agent=cfg.user_agent, record_headers=cfg.record_headers, headers_dir=HEADERS_DIR,
                   max_bytes=cfg.max_bytes, max_seconds=cfg.max_seconds, max_pixels=cfg.decode_cap(), allow=allow,
                   table=None if work_dir is None else (str(work_dir), cfg))
    i2d_main.Downloader = cls
    if threading.current_thread() is not threading.main_thread():
        # img2dataset installs a SIGINT handler, which Python allows only in the main thread
        import signal
        import types

        i2d_main.signal = types.SimpleNamespace(signal=lambda *a, **k: None, SIGINT=signal.SIGINT)
    try:
        yield
    finally:
        i2d_main.Downloader, i2d_main.signal = original, original_signal
        PENDING["table"] = None


# --- the parent side --------------------------------------------------------------------------------------
def _write_url_list(urls: list[str], work_dir: Path) -> bool:
    """Write the URL list; returns False when an identical list is already there (resume)."""
    digest = hashlib.sha256("\n".join(urls).encode("utf-8", "surrogatepass")).hexdigest()
    marker = work_dir / "urls.sha256"
    if marker.exists() and marker.read_text().strip() == digest and (work_dir / URLS_FILE).exists():
        return False
    if (work_dir / I2D_DIR).exists():
        # img2dataset's incremental mode needs the same input split into the same shards
        log.warning("image URL list changed: discarding the previous download in %s", work_dir)
        import shutil

        shutil.rmtree(work_dir / I2D_DIR)
        shutil.rmtree(work_dir / TABLE_DIR, ignore_errors=True)
    write_table_atomic(work_dir / URLS_FILE, pa.table({"url": pa.array(urls, pa.string())}))
    write_text_atomic(marker, digest + "\n")
    return True


def img2dataset_kwargs(cfg: ImagesConfig, url_list: Path, output_folder: Path) -> dict:
    """The arguments we pass to ``img2dataset.download`` for a profile (also used by the benchmark)."""
    return dict(
        url_list=str(url_list), input_format="parquet", url_col="url",
        output_folder=str(output_folder), output_format="parquet",
        processes_count=cfg.processes_count or os.cpu_count() or 1, thread_count=cfg.thread_count,
        number_sample_per_shard=cfg.number_sample_per_shard, timeout=cfg.timeout, retries=cfg.retries,
        resize_mode="no", encode_format=cfg.encode_format, encode_quality=cfg.encode_quality,
        max_image_area=cfg.decode_cap(),
        skip_reencode=False, disable_all_reencoding=not cfg.reencode, compute_hash="sha256",
        extract_exif=cfg.extract_exif, incremental_mode="incremental", max_shard_retry=1,
        user_agent_token=cfg.user_agent_token,
        disallowed_header_directives=list(cfg.disallowed_header_directives),
    )


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


def shard_to_table(shard_parquet: Path, cfg: ImagesConfig) -> pa.Table:
    """One finished img2dataset shard (its Parquet and header log) as image-table rows.

    The image bytes are not rebuilt from Python objects: the part's ``bytes`` column is taken from the
    shard's own column (one Arrow ``take`` in URL order), which halves the CPU of this step.
    """
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
    # one thread, and the system allocator: a worker reads a shard once into fresh memory, where Arrow's
    # threads and mimalloc's fresh segments cost more CPU (mostly the kernel's page faults) than they save
    pool = pa.system_memory_pool()
    t = pq.ParquetFile(shard_parquet, memory_map=True).read(use_threads=False)
    n = t.num_rows
    data_col = cfg.encode_format if cfg.encode_format in t.column_names else None

    def column(name: str) -> list:
        return t.column(name).to_pylist() if name in t.column_names else [None] * n

    urls, statuses, errors, shas = column("url"), column("status"), column("error_message"), column("sha256")
    # one image's bytes at a time (not the whole column as Python objects): the same memory is reused
    blobs = (v.as_py() for v in t.column(data_col)) if data_col else iter(lambda: None, 0)
    rows, source = [], []  # source[k]: the shard row whose bytes row k stores (None: no bytes)
    for i, (url, blob) in enumerate(zip(urls, blobs)):
        headers, status, final_url = _final_headers(url, log_by_url)
        final_url = final_url if final_url and final_url != url else None
        if statuses[i] == "success":
            # img2dataset hashes the downloaded stream: the stored bytes only when nothing was re-encoded
            sha = shas[i] if not cfg.reencode else None
            row = make_row(url, blob, cfg, http_status=status, headers=headers, final_url=final_url,
                           sha256=sha, source="web")
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
    if data_col is None or not any(s is not None for s in source):
        return table
    data = pc.take(t.column(data_col), pa.array([source[k] for k in order], pa.int64()), memory_pool=pool)
    data = data.cast(pa.binary())
    return table.set_column(table.schema.get_field_index("bytes"), IMAGE_TABLE_SCHEMA.field("bytes"), data)


def write_shard_part(work_dir: str | Path, shard: str, cfg: ImagesConfig, table_dir: str | None = None) -> str:
    """Write the image-table part of one finished img2dataset shard; returns its path.

    Called in the img2dataset worker that downloaded the shard, as soon as it is done (in parallel with
    the other workers, while they still download); :func:`build_table` does it for any shard left over.
    """
    work_dir = Path(work_dir)
    table = ImageTable(table_dir or work_dir / TABLE_DIR)
    return table.write_part(shard, shard_to_table(work_dir / I2D_DIR / f"{shard}.parquet", cfg))


def build_table(work_dir: str | Path, cfg: ImagesConfig, table_dir: str | None = None) -> ImageTable:
    """Turn every finished img2dataset shard (``*_stats.json`` present) into a table part, once
    (``table_dir``: where the table goes, default ``work_dir/table``; may be on object storage)."""
    work_dir = Path(work_dir)
    table = ImageTable(table_dir or work_dir / TABLE_DIR)
    for stats in sorted((work_dir / I2D_DIR).glob("*_stats.json")):
        shard = stats.name[: -len("_stats.json")]
        parquet = stats.with_name(f"{shard}.parquet")
        if table.has_part(shard) and (storage.is_remote(table.folder)  # parts come from finished shards only
                                      or Path(table.part_path(shard)).stat().st_mtime >= stats.stat().st_mtime):
            continue
        if not parquet.exists():
            log.warning("img2dataset shard %s has stats but no parquet; skipped", shard)
            continue
        table.write_part(shard, shard_to_table(parquet, cfg))
    return table


def download_images(urls: Iterable[str], work_dir: str | Path, cfg: ImagesConfig | None = None,
                    allow: list[str] | None = None) -> ImageTable:
    """Download the unique ``urls`` with img2dataset into ``work_dir``; returns the image table.

    Resumable: rerun with the same URLs and only unfinished img2dataset shards are fetched again.
    Only public addresses are fetched (:mod:`obelics.netguard`); ``allow`` lists networks let through
    anyway (tests, private mirrors; None: the ``OBELICS_NET_ALLOW`` environment variable).
    """
    import img2dataset

    cfg = cfg or ImagesConfig()
    table_dir = None
    if storage.is_remote(work_dir):
        table_dir = storage.join(work_dir, TABLE_DIR)
        work_dir = scratch_dir(work_dir)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    urls = sorted(set(u for u in urls if u))
    if _write_url_list(urls, work_dir) and table_dir is not None:
        storage.remove_tree(table_dir)  # parts of another URL list
    if urls:
        # the workers write each shard's table part when it is local; on object storage the parent does
        with _our_downloader(cfg, allow, work_dir if table_dir is None else None):
            img2dataset.download(**img2dataset_kwargs(cfg, work_dir / URLS_FILE, work_dir / I2D_DIR))
    return build_table(work_dir, cfg, table_dir)


def scratch_dir(work_dir: str) -> Path:
    """The local folder img2dataset downloads into when the work folder is on object storage.

    img2dataset's resumable mode and our per-shard header logs need a filesystem, and the download runs
    on the driver; only its result, the image table, goes to the work folder where every node reads it.
    ``OBELICS_SCRATCH`` sets the base (default: the system's temporary folder); one folder per work folder.
    """
    import tempfile

    base = os.environ.get("OBELICS_SCRATCH") or os.path.join(tempfile.gettempdir(), "obelics-scratch")
    return Path(base) / hashlib.sha1(str(work_dir).encode()).hexdigest()[:16]
