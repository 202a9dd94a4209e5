"""Image download: the unique image URLs of a whole run, fetched by img2dataset, into the image table.

:func:`download_images` writes the URL list once: a run's distinct-URL files (:class:`UrlFiles`) regrouped
into ``urls/`` (files of whole img2dataset shards, never held in one list), or a plain list sorted and made
unique (``urls.parquet``); it calls ``img2dataset.download`` on it (Parquet output, sha256, X-Robots-Tag directives on, retries and
timeout from the profile, ``incremental_mode="incremental"``: a shard whose ``_stats.json`` exists is
not fetched again). Each img2dataset shard becomes one part of the image table
(:mod:`pipeline.images.table`), written by the worker that downloaded it before the shard is marked done;
the image bytes are written there only (img2dataset's shard keeps their metadata). A rerun after a kill
downloads only the unfinished shards.

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
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from obelics import storage
from obelics.parquet import write_table_atomic
from obelics.storage import write_text_atomic
from pipeline.images.config import ImagesConfig
from pipeline.images.parts import HEADERS_DIR, I2D_DIR, TABLE_DIR, ShardWithoutBytes, write_shard_part
from pipeline.images.table import ImageTable

log = logging.getLogger(__name__)

URLS_FILE = "urls.parquet"


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
def _our_downloader(cfg: ImagesConfig, allow: list[str] | None = None, work_dir: Path | None = None,
                    table_dir: str | None = None):
    import img2dataset  # noqa: F401 - its package binds `main` to the function, so go through sys.modules

    i2d_main = sys.modules["img2dataset.main"]
    from pipeline.images.i2d_worker import PENDING, ObelicsDownloader

    cls = ObelicsDownloader
    original, original_signal = i2d_main.Downloader, i2d_main.signal
    PENDING.update(user_agent=cfg.user_agent, record_headers=cfg.record_headers, headers_dir=HEADERS_DIR,
                   max_bytes=cfg.max_bytes, max_seconds=cfg.max_seconds, max_pixels=cfg.decode_cap(), allow=allow,
                   table=None if work_dir is None else (str(work_dir), cfg, table_dir))
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
@dataclass(frozen=True)
class UrlFiles:
    """Distinct URLs as Parquet files (a ``url`` column, each file sorted, no URL in two files), fetched in
    ``files`` order: what the run's tasks write (:func:`pipeline.images.join.distinct_urls`, ``urls-<q>.parquet``
    for hash partition ``q`` of ``partitions``: ``keys``), handed to the fetch instead of the URLs, so that the driver
    never holds the list. Not iterable: the fetch reads one file at a time (a guard against a driver that
    would materialise it)."""

    files: tuple[str, ...]
    count: int                         # the URLs of all files
    partitions: int | None = None      # P, when file k holds hash partition keys[k] of P (the WARC source's join)
    keys: tuple[int, ...] | None = None

    def __iter__(self):
        raise TypeError("UrlFiles are read a file at a time by the fetch, never as one list in the driver")


URL_LIST_DIR = "urls"  # the fetch's URL list as files (from UrlFiles), beside the plain list's URLS_FILE
URL_LIST_SHARDS = 16   # img2dataset shards a file of URL_LIST_DIR holds (the driver's buffer: 160k URLs)


def _list_marker(work_dir: Path, digest: str, present: bool) -> bool:
    """Whether the list whose ``digest`` is given differs from the one the download in ``work_dir`` used
    (an identical list, ``present``, resumes it); a different one discards that download."""
    marker = work_dir / "urls.sha256"
    if present and marker.exists() and marker.read_text().strip() == digest:
        return False
    if (work_dir / I2D_DIR).exists():
        # img2dataset's incremental mode needs the same input split into the same shards
        log.warning("image URL list changed: discarding the previous download in %s", work_dir)
        import shutil

        shutil.rmtree(work_dir / I2D_DIR)
        shutil.rmtree(work_dir / TABLE_DIR, ignore_errors=True)
    return True


def _write_url_list(urls: list[str], work_dir: Path) -> bool:
    """Write the URL list; returns False when an identical list is already there (resume)."""
    import shutil

    digest = hashlib.sha256("\n".join(urls).encode("utf-8", "surrogatepass")).hexdigest()
    if not _list_marker(work_dir, digest, (work_dir / URLS_FILE).exists()):
        return False
    shutil.rmtree(work_dir / URL_LIST_DIR, ignore_errors=True)  # a list of the other form
    write_table_atomic(work_dir / URLS_FILE, pa.table({"url": pa.array(urls, pa.string())}))
    write_text_atomic(work_dir / "urls.sha256", digest + "\n")
    return True


def _write_url_files(src: UrlFiles, work_dir: Path, per_shard: int) -> bool:
    """Copy ``src``'s URLs, in order, into ``work_dir/urls/`` as files of ``URL_LIST_SHARDS`` whole
    img2dataset shards each (the last file excepted), a record batch at a time; returns False when the same
    list is already there (resume).

    img2dataset shards each input file on its own (a file's last shard is short): the run's partition files
    (~1,600 URLs each at a snapshot, where a shard holds 10,000) are regrouped so that the shards are those of
    one list in the same order, as many and as full. The digest is the plain list's (the URLs joined by
    newlines), so a list holding the same URLs in the same order, in either form, resumes the same shards."""
    import shutil

    from obelics import storage as st

    rows = per_shard * URL_LIST_SHARDS
    staging = work_dir / f"{URL_LIST_DIR}.new-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    h = hashlib.sha256()
    pending: list[pa.Array] = []
    n_pending = n_files = 0
    first = True

    def flush(k: int) -> None:
        nonlocal pending, n_pending, n_files
        whole = pa.concat_arrays(pending) if pending else pa.array([], pa.string())
        write_table_atomic(staging / f"urls-{n_files:06d}.parquet", pa.table({"url": whole.slice(0, k)}))
        n_files += 1
        pending, n_pending = ([whole.slice(k)] if k < len(whole) else []), len(whole) - k

    for f in src.files:
        for batch in st.parquet_file(f).iter_batches(batch_size=65536, columns=["url"]):
            col = batch.column(0).cast(pa.string())
            if not len(col):
                continue
            h.update((("" if first else "\n") + "\n".join(col.to_pylist())).encode("utf-8", "surrogatepass"))
            first = False
            pending.append(col)
            n_pending += len(col)
            while n_pending >= rows:
                flush(rows)
    if n_pending:
        flush(n_pending)
    changed = _list_marker(work_dir, h.hexdigest(), True)
    shutil.rmtree(work_dir / URL_LIST_DIR, ignore_errors=True)
    (work_dir / URLS_FILE).unlink(missing_ok=True)
    staging.rename(work_dir / URL_LIST_DIR)
    write_text_atomic(work_dir / "urls.sha256", h.hexdigest() + "\n")
    return changed


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


def build_table(work_dir: str | Path, cfg: ImagesConfig, table_dir: str | None = None) -> ImageTable:
    """The image table of every finished img2dataset shard (``*_stats.json`` present), writing the part of
    any shard that has none from its shard file (``table_dir``: where the table goes, default
    ``work_dir/table``; may be on object storage). A shard whose file holds no image bytes (our workers keep
    them only for the part) and that has no part is left out: see :func:`_complete_parts`."""
    return _complete_parts(Path(work_dir), cfg, table_dir)[0]


def _complete_parts(work_dir: Path, cfg: ImagesConfig, table_dir: str | None) -> tuple[ImageTable, list[str]]:
    """(table, shards reset): a finished shard without a part whose file cannot give one (no image bytes in
    it) is reset (its stats, file and header log removed), so that img2dataset downloads it again."""
    table = ImageTable(table_dir or work_dir / TABLE_DIR)
    reset = []
    for stats in sorted((work_dir / I2D_DIR).glob("*_stats.json")):
        shard = stats.name[: -len("_stats.json")]
        parquet = stats.with_name(f"{shard}.parquet")
        if table.has_part(shard):  # written before the shard was marked done, or rebuilt from its file
            continue
        if not parquet.exists():
            log.warning("img2dataset shard %s has stats but no parquet; skipped", shard)
            continue
        try:
            write_shard_part(work_dir, shard, cfg, table_dir)  # a shard img2dataset wrote with its bytes
        except ShardWithoutBytes:
            log.warning("image shard %s has no table part and its file no bytes: downloading it again", shard)
            for path in (stats, parquet, stats.parent / HEADERS_DIR / f"{shard}.jsonl"):
                path.unlink(missing_ok=True)
            reset.append(shard)
    return table, reset


def download_images(urls: Iterable[str] | UrlFiles, work_dir: str | Path, cfg: ImagesConfig | None = None,
                    allow: list[str] | None = None) -> ImageTable:
    """Download the unique ``urls`` with img2dataset into ``work_dir``; returns the image table.

    ``urls``: the URLs (sorted and made unique here), or :class:`UrlFiles` (distinct URLs as files, fetched
    in their order and read a file at a time, never held whole: a snapshot's ~1e8 URLs are ~10 GB as strings).
    Each image is written once: img2dataset's worker writes the bytes into the shard's image-table part
    (local, or on object storage when ``work_dir`` is there), and img2dataset's own shard only the metadata.
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
    if isinstance(urls, UrlFiles):
        changed, url_list, count = _write_url_files(urls, work_dir, cfg.number_sample_per_shard), URL_LIST_DIR, urls.count
    else:
        urls = sorted(set(u for u in urls if u))
        changed, url_list, count = _write_url_list(urls, work_dir), URLS_FILE, len(urls)
    if changed and table_dir is not None:
        storage.remove_tree(table_dir)  # parts of another URL list
    for _attempt in range(2):
        if count:
            with _our_downloader(cfg, allow, work_dir, table_dir):
                img2dataset.download(**img2dataset_kwargs(cfg, work_dir / url_list, work_dir / I2D_DIR))
        table, reset = _complete_parts(work_dir, cfg, table_dir)
        if not reset:
            return table
    raise RuntimeError(f"image shards {', '.join(reset)}: downloaded twice, and their table parts are still "
                       f"missing (see the img2dataset output above)")


def scratch_dir(work_dir: str) -> Path:
    """The local folder img2dataset downloads into when the work folder is on object storage.

    img2dataset's resumable mode and our per-shard header logs need a filesystem, and the download runs
    on the driver; only its result, the image table, goes to the work folder where every node reads it.
    ``OBELICS_SCRATCH`` sets the base (default: the system's temporary folder); one folder per work folder.
    """
    import tempfile

    base = os.environ.get("OBELICS_SCRATCH") or os.path.join(tempfile.gettempdir(), "obelics-scratch")
    return Path(base) / hashlib.sha1(str(work_dir).encode()).hexdigest()[:16]
