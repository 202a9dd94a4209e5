"""What runs inside img2dataset's worker processes: our User-Agent and a response-header log.

img2dataset's API has no option for the whole User-Agent (it sends a Firefox string plus
``(compatible; TOKEN; +img2dataset URL)``) and keeps no response headers. :class:`ObelicsDownloader`
subclasses its ``Downloader`` (``pipeline.images.download`` puts it in place only for the duration
of our ``img2dataset.download`` call); in each worker process it installs a urllib handler that
replaces the User-Agent with the profile's and appends the headers opt-out needs (``X-Robots-Tag``,
``TDM-Reservation``...) of every response, redirects and errors included, to one JSON-lines log per
shard (``_headers/NNNNN.jsonl``, renamed into place when the shard is done).

Kept free of heavy imports (no pyarrow, no PIL): spawned workers import it to unpickle the class.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from pathlib import Path

from img2dataset.downloader import Downloader

PENDING: dict = {"user_agent": None, "record_headers": [], "headers_dir": "_headers"}  # set by the parent

_sink_lock = threading.Lock()
_sink: list = [None]        # the open header log of the shard this process is downloading
_opener_pid: list = [None]  # the process that installed our opener


class HeaderHandler(urllib.request.BaseHandler):
    """Sets our User-Agent and logs the headers of every response (before redirects and errors are handled)."""

    handler_order = 100  # before HTTPErrorProcessor (1000): 3xx/4xx/5xx responses are seen too

    def __init__(self, user_agent: str, record: list[str]):
        self.user_agent = user_agent
        self.record = [h.lower() for h in record]

    def http_request(self, req):
        req.add_header("User-Agent", self.user_agent)
        return req

    def http_response(self, req, response):
        try:
            headers = {}
            for name in self.record:
                values = response.headers.get_all(name) or []
                if values:
                    headers[name] = ", ".join(values)
            line = json.dumps({"url": req.full_url, "status": response.status, "headers": headers,
                               "location": response.headers.get("Location")}) + "\n"
            with _sink_lock:
                if _sink[0] is not None:
                    _sink[0].write(line)
        except Exception:  # noqa: BLE001 - never let logging break a download
            pass
        return response

    https_request = http_request
    https_response = http_response


class ObelicsDownloader(Downloader):
    """img2dataset's Downloader, plus our User-Agent and a header log per shard."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.obelics_user_agent = PENDING["user_agent"]
        self.obelics_record_headers = list(PENDING["record_headers"])
        self.obelics_headers_dir = PENDING["headers_dir"]

    def download_shard(self, row):
        if _opener_pid[0] != os.getpid():
            if self.obelics_user_agent:
                urllib.request.install_opener(urllib.request.build_opener(
                    HeaderHandler(self.obelics_user_agent, self.obelics_record_headers)))
            _opener_pid[0] = os.getpid()
        shard_id = row[0]
        folder = Path(self.output_folder) / self.obelics_headers_dir
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{shard_id:0{self.oom_shard_count}d}.jsonl"
        tmp = final.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            with _sink_lock:
                _sink[0] = f
            try:
                super().download_shard(row)
            finally:
                with _sink_lock:
                    _sink[0] = None
        os.replace(tmp, final)
