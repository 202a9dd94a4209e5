"""What runs inside img2dataset's worker processes: our User-Agent, a response-header log, the address
guard and bounded transfers.

img2dataset's API has no option for the whole User-Agent (it sends a Firefox string plus
``(compatible; TOKEN; +img2dataset URL)``), keeps no response headers, follows any redirect to any address,
bounds only each socket read (a server dripping a byte a second holds a download forever) and reads the
whole body before any size check. :class:`ObelicsDownloader` subclasses its ``Downloader``
(``pipeline.images.download`` puts it in place only for the duration of our ``img2dataset.download``
call); in each worker process it installs a urllib opener whose connections go only to public addresses
(:mod:`obelics.netguard`, every redirect hop included) and whose handler replaces the User-Agent with the
profile's and appends the headers opt-out needs (``X-Robots-Tag``, ``TDM-Reservation``...) of every
response, redirects and errors included, to one JSON-lines log per shard (``_headers/NNNNN.jsonl``, renamed
into place when the shard is done). It also replaces img2dataset's 15-line ``download_image`` (the one
function its API gives no hook into) with :func:`download_image`: a literal non-public address is refused
before any request, the whole download (redirects included) has a deadline that a watchdog enforces by
shutting the socket down, the body is read in pieces and the transfer stops as soon as it passes
``max_bytes``, and an image whose header declares more than ``max_pixels`` pixels is refused before
img2dataset's re-encoding would decode it.

Kept free of heavy imports (no pyarrow; PIL only when a body arrives): spawned workers import it to
unpickle the class.
"""

from __future__ import annotations

import heapq
import http.client
import io
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import img2dataset.downloader as i2d_downloader
from img2dataset.downloader import Downloader

from obelics import netguard
from obelics.storage import AtomicFile

# set by the parent before img2dataset pickles the downloader to its workers
PENDING: dict = {"user_agent": None, "record_headers": [], "headers_dir": "_headers", "max_bytes": None,
                 "max_seconds": None, "max_pixels": None, "allow": None, "table": None}
_LIMITS: dict = {"max_bytes": None, "max_seconds": None, "max_pixels": None}  # this worker's

_sink_lock = threading.Lock()
_sink: list = [None]        # the open header log of the shard this process is downloading
_sink_log: dict = {}        # its entries by URL (the last one of each), for the shard's table part
_opener_pid: list = [None]  # the process that installed our opener


class HeaderHandler(urllib.request.BaseHandler):
    """Sets our User-Agent and logs the headers of every response (before redirects and errors are handled)."""

    handler_order = 100  # before HTTPErrorProcessor (1000): 3xx/4xx/5xx responses are seen too

    def __init__(self, user_agent: str, record: list[str]):
        self.user_agent = user_agent
        self.record = [h.lower() for h in record]

    def http_request(self, req):
        if self.user_agent:
            req.add_header("User-Agent", self.user_agent)
        return req

    def http_response(self, req, response):
        try:
            headers = {}
            for name in self.record:
                values = response.headers.get_all(name) or []
                if values:
                    # one header line per list item: X-Robots-Tag scopes a user agent per line
                    headers[name] = values[0] if len(values) == 1 else list(values)
            entry = {"url": req.full_url, "status": response.status, "headers": headers,
                     "location": response.headers.get("Location")}
            line = json.dumps(entry) + "\n"
            with _sink_lock:
                if _sink[0] is not None:
                    _sink[0].write(line)
                    # the same entries by URL, the last one winning as when the log is read back
                    # (pipeline.images.parts.read_header_log; plain JSON values, so equal to a read-back):
                    # the shard's part is written before the log file is in place
                    _sink_log[entry["url"]] = entry
        except Exception:  # noqa: BLE001 - never let logging break a download
            pass
        return response

    https_request = http_request
    https_response = http_response


# -- the deadline of one download: a watchdog shuts its sockets down when it passes ------------------------
class _Watchdog:
    """One daemon thread per process; ``watch(sock, deadline)`` shuts ``sock`` down at ``deadline``
    (a blocked read returns at once), so TLS handshakes, headers and bodies are all bounded."""

    def __init__(self):
        self._heap: list = []
        self._cond = threading.Condition()
        self._seq = 0
        self._thread = None

    def watch(self, sock, deadline: float, state: dict) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, sock, state))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="download-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][1] == self._seq:
                # the earliest deadline now: wake the thread. Otherwise it already wakes before this one (the
                # deadlines of one process come in nearly increasing order), and a wake-up per connection
                # costs a thread switch each
                self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, sock, state = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 1.0))
                    continue
                heapq.heappop(self._heap)
            if not state.get("done"):
                state["expired"] = True
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_WATCHDOG = _Watchdog()
_current = threading.local()  # the download running in this thread: its deadline and state


def _watched_connection(addr, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source=None, allow=None):
    sock = netguard.guarded_create_connection(addr, timeout, source, allow)
    state = getattr(_current, "state", None)
    if state is not None:
        _WATCHDOG.watch(sock, state["deadline"], state)
    return sock


def _opener(allow, handler) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(*netguard.guarded_handlers(allow, connect=_watched_connection), handler)


class DownloadTooLarge(Exception):
    """The body passed ``max_bytes``: the transfer was stopped there."""


class DownloadDeadline(Exception):
    """The whole download (redirects included) passed ``max_seconds``."""


def read_bounded(response, max_bytes: int | None) -> bytes:
    """The body, stopping as soon as it passes ``max_bytes``: in one read when its declared length is within
    the cap, else in pieces (at most one socket read each)."""
    declared = response.headers.get("Content-Length")
    if max_bytes and declared and declared.isdigit() and int(declared) > max_bytes:
        raise DownloadTooLarge(f"download_too_large: Content-Length {declared} > {max_bytes} bytes")
    length = getattr(response, "length", None)
    if isinstance(length, int) and not getattr(response, "chunked", True) and (not max_bytes or length <= max_bytes):
        # a declared length within the cap: http.client reads exactly that many bytes into one buffer
        try:
            return response.read()
        except http.client.IncompleteRead as err:  # the body ended early: what arrived, as piecewise reads give
            return err.partial
    chunks, total = [], 0
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if max_bytes and total > max_bytes:
            raise DownloadTooLarge(f"download_too_large: body over {max_bytes} bytes")
        chunks.append(chunk)


def read_header(data: bytes) -> tuple[str, int, int] | str | None:
    """(format, width, height) from the image header only (PIL opens lazily: nothing is decoded), as
    :func:`pipeline.images.table.probe_bytes` reads them; ``"bomb"`` past PIL's own pixel cap; None when PIL
    does not know the bytes."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return (im.format or "").lower(), *im.size
    except Image.DecompressionBombError:
        return "bomb"
    except Exception:  # noqa: BLE001 - not an image PIL knows: img2dataset's decoder says so later
        return None


def header_pixels(header: tuple[str, int, int] | str | None) -> int | None:
    """Width x height of a :func:`read_header` result (``1 << 62`` past PIL's cap; None: not an image PIL knows)."""
    return 1 << 62 if header == "bomb" else None if header is None else header[1] * header[2]


def declared_pixels(data: bytes) -> int | None:
    """Width x height from the image header only (PIL opens lazily: nothing is decoded)."""
    return header_pixels(read_header(data))


# URL -> (format, width, height) PIL read at download in this process, for the shard's table part (which then
# does not open the same bytes again); emptied with every shard
READ_AT_DOWNLOAD: dict[str, tuple[str, int, int]] = {}


def download_image(row, timeout, user_agent_token, disallowed_header_directives):
    """img2dataset's ``download_image`` with the address guard, a deadline, a byte cap and a pixel cap.

    Same contract: ``(key, BytesIO | None, error message | None)``.
    """
    key, url = row
    reason = netguard.literal_refusal(url, PENDING_ALLOW[0])
    if reason:
        return key, None, f"address_refused:{reason} {url}"
    max_seconds = _LIMITS["max_seconds"]
    state = {"deadline": time.monotonic() + (max_seconds or 1e9), "done": False}
    _current.state = state
    try:
        request = urllib.request.Request(url, data=None)
        with urllib.request.urlopen(request, timeout=timeout) as r:
            if disallowed_header_directives and i2d_downloader.is_disallowed(  # per header line
                    r.headers, user_agent_token, disallowed_header_directives):
                return key, None, "Use of image disallowed by X-Robots-Tag directive"
            data = read_bounded(r, _LIMITS["max_bytes"])
        max_pixels = _LIMITS["max_pixels"]
        if max_pixels:
            header = read_header(data)
            pixels = header_pixels(header)
            if pixels is not None and pixels > max_pixels:
                return key, None, f"image area too large ({pixels} pixels declared > {max_pixels})"
            if isinstance(header, tuple):
                READ_AT_DOWNLOAD[url] = header
            else:  # not an earlier try's
                READ_AT_DOWNLOAD.pop(url, None)
        if state.get("expired"):
            raise DownloadDeadline("")
        return key, io.BytesIO(data), None
    except Exception as err:  # noqa: BLE001 - img2dataset's contract: the error as a message
        if state.get("expired"):
            return key, None, f"download timeout: the whole download took over {max_seconds:g} s"
        return key, None, str(err)
    finally:
        state["done"] = True
        _current.state = None


# answers that another try would not change: no second request for them (img2dataset retried every failure)
_FINAL = ("HTTP Error 4", "X-Robots-Tag", "address_refused", "download_too_large", "image area too large",
          "infinite loop", "unknown url type", "no host given")


def download_image_with_retry(row, timeout, retries, user_agent_token, disallowed_header_directives):
    """img2dataset's retry loop, retrying only what may succeed next time (timeouts, resets, 5xx)."""
    for _ in range(retries + 1):
        key, img_stream, err = download_image(row, timeout, user_agent_token, disallowed_header_directives)
        if img_stream is not None or (err and any(m in err for m in _FINAL)):
            return key, img_stream, err
    return key, None, err


PENDING_ALLOW: list = [None]  # this worker's allow-list (None: OBELICS_NET_ALLOW)


class ObelicsDownloader(Downloader):
    """img2dataset's Downloader, plus our User-Agent, a header log per shard, the address guard and bounds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.obelics_user_agent = PENDING["user_agent"]
        self.obelics_record_headers = list(PENDING["record_headers"])
        self.obelics_headers_dir = PENDING["headers_dir"]
        self.obelics_limits = {k: PENDING.get(k) for k in _LIMITS}
        self.obelics_allow = None if PENDING.get("allow") is None else list(PENDING["allow"])
        # (work folder, ImagesConfig, table folder or None): write the shard's table part, with its bytes
        self.obelics_table = PENDING.get("table")

    def download_shard(self, row):
        if _opener_pid[0] != os.getpid():
            PENDING_ALLOW[0] = self.obelics_allow
            _LIMITS.update(self.obelics_limits)
            if _LIMITS["max_pixels"]:
                from PIL import Image

                Image.MAX_IMAGE_PIXELS = _LIMITS["max_pixels"]
                # OpenCV (img2dataset's re-encoder) reads its own cap once per process
                os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(_LIMITS["max_pixels"])
            urllib.request.install_opener(_opener(self.obelics_allow, HeaderHandler(
                self.obelics_user_agent, self.obelics_record_headers)))
            i2d_downloader.download_image = download_image
            i2d_downloader.download_image_with_retry = download_image_with_retry  # looked up per call
            _opener_pid[0] = os.getpid()
        shard_id = row[0]
        shard = f"{shard_id:0{self.oom_shard_count}d}"
        folder = Path(self.output_folder) / self.obelics_headers_dir
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{shard}.jsonl"
        READ_AT_DOWNLOAD.clear()
        writer_class = self.sample_writer_class
        if self.obelics_table is not None:
            # the image bytes go only into the shard's image-table part, which the writer's close() writes
            # before img2dataset marks the shard done (its _stats.json); img2dataset's own shard keeps the
            # metadata, so every image is written once
            work_dir, cfg, table_dir = self.obelics_table
            self.sample_writer_class = _part_writer(writer_class, self.compute_hash, Path(self.output_folder)
                                                    / f"{shard}.parquet", work_dir, shard, cfg, table_dir)
        with AtomicFile(final) as af:
            f = io.TextIOWrapper(af.file, encoding="utf-8")
            with _sink_lock:
                _sink[0] = f
                _sink_log.clear()
            try:
                super().download_shard(row)
            finally:
                self.sample_writer_class = writer_class
                with _sink_lock:
                    _sink[0] = None
                    _sink_log.clear()
            f.flush()
            f.detach()
        READ_AT_DOWNLOAD.clear()


def _keeping(writer_class, samples: list, hash_name: str | None, keep_bytes: bool = True):
    """``writer_class`` (img2dataset's sample writer) that also keeps what it wrote in ``samples``:
    (url, status, error message, hash, image bytes, what PIL read from them at download), what
    :func:`pipeline.images.parts.samples_to_table` takes. The bytes are references to the objects
    img2dataset already holds, not copies. ``keep_bytes=False``: img2dataset's writer gets no image bytes
    (its shard holds the metadata only), ours are the only copy."""

    class Keeping(writer_class):
        def write(self, img_str, key, caption, meta):
            super().write(img_str if keep_bytes else None, key, caption, meta)
            url = meta.get("url")
            samples.append((url, meta.get("status"), meta.get("error_message"),
                            meta.get(hash_name) if hash_name else None, img_str, READ_AT_DOWNLOAD.pop(url, None)))

    return Keeping


def _part_writer(writer_class, hash_name: str | None, shard_parquet: Path, work_dir: str, shard: str, cfg,
                 table_dir: str | None):
    """img2dataset's sample writer for one shard, writing the image bytes only into the shard's image-table
    part: ``write`` hands img2dataset's writer the metadata alone, ``close`` closes its shard file, then
    writes the part (``table_dir``: local or object storage) from the samples still in memory and the
    header log's entries. img2dataset calls ``close`` before it writes ``_stats.json``: a shard marked done
    always has its part, and a part that cannot be written fails the shard (img2dataset retries it, a
    resume downloads it again), never leaving a finished shard without its images."""
    samples: list = []

    class PartWriter(_keeping(writer_class, samples, hash_name, keep_bytes=False)):
        def close(self):
            super().close()
            from pipeline.images.parts import write_shard_part

            with _sink_lock:
                log_by_url = dict(_sink_log)
            try:
                write_shard_part(work_dir, shard, cfg, table_dir, samples=samples, log_by_url=log_by_url,
                                 shard_parquet=shard_parquet)
            finally:
                samples.clear()  # the shard's image bytes: freed before the next shard downloads

    return PartWriter
