"""A loopback HTTP image server (127.0.0.1, one daemon thread) for tests and the image benchmark.

It serves real photos and every way a download goes wrong:

==========================  ========================================================================
``/img/NAME``               the photo, original bytes, with its Content-Type
``/distinct/NAME?Q``        the photo with ``Q`` in a comment (PNG ``tEXt``, JPEG ``COM``): distinct bytes
                            per URL, as a crawl's images are (other formats: the photo as is)
``/status/CODE``            an empty response with that HTTP status (404, 500...)
``/slow/NAME``              the photo after ``slow_seconds`` (longer than the client's timeout)
``/redirect/NAME``          302 to ``/img/NAME``
``/noai/NAME``              the photo with ``X-Robots-Tag: noai``
``/tdm/NAME``               the photo with ``TDM-Reservation: 1`` (recorded, not dropped at download)
``/truncated/NAME``         the first half of the photo's bytes (a truncated file, honest length)
``/html/NAME``              an HTML page served as ``image/jpeg`` (not an image)
``/bomb/NAME``              a PNG whose header claims 20000x20000 pixels (oversized)
``/noai2/NAME``             the photo with two X-Robots-Tag lines: ``googlebot: noindex`` then ``noai``
``/to/HOST:PORT/PATH``      302 to ``http://HOST:PORT/PATH`` (a redirect to another address)
``/loop/NAME``              302 to itself (a redirect loop)
``/drip/NAME``              the photo one byte every ``drip_seconds`` (each read is quick, the whole slow)
``/huge/NAME``              an endless body without a length, until the client stops (``sent`` counts it)
==========================  ========================================================================

A query string is ignored (``/img/NAME?i=7``), so a benchmark can make many distinct URLs.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
                 ".webp": "image/webp", ".tif": "image/tiff", ".bmp": "image/bmp"}


def skimage_photos(names=("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                          "rocket.jpg", "horse.png", "camera.png", "retina.jpg",
                          "no_time_for_that_tiny.gif")) -> dict[str, bytes]:
    """Original bytes of scikit-image's sample photos (installed with the package; no network)."""
    import skimage.data

    folder = Path(os.path.dirname(skimage.data.__file__))
    return {n: (folder / n).read_bytes() for n in names if (folder / n).exists()}


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny valid-looking PNG whose header declares ``width x height`` (a decompression-bomb header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def distinct_variant(photo: bytes, token: bytes) -> bytes:
    """``photo`` with ``token`` in a comment right after its header: the same picture, distinct bytes
    (PNG: a ``tEXt`` chunk after ``IHDR``; JPEG: a ``COM`` segment after ``SOI``; else the photo as is)."""
    if photo.startswith(b"\x89PNG\r\n\x1a\n"):
        data = b"Comment\0" + token
        chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
        return photo[:33] + chunk + photo[33:]  # 8-byte signature + 25-byte IHDR chunk
    if photo.startswith(b"\xff\xd8"):
        return photo[:2] + b"\xff\xfe" + struct.pack(">H", len(token[:65000]) + 2) + token[:65000] + photo[2:]
    return photo


class LoopbackImageServer:
    """Serve ``photos`` (name -> bytes) on 127.0.0.1 in a daemon thread; use as a context manager."""

    def __init__(self, photos: dict[str, bytes], slow_seconds: float = 3.0, max_sleep: float = 10.0,
                 drip_seconds: float = 0.2, host: str = "127.0.0.1"):
        self.photos = photos
        self.slow_seconds = min(slow_seconds, max_sleep)
        self.drip_seconds = drip_seconds
        self.max_sleep = max_sleep
        self.sent: dict[str, int] = {}  # /huge/ and /drip/ paths: body bytes written before the client left
        self.requests: list[tuple[str, str]] = []  # (path, user agent)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, data: bytes, length: int | None, delay: float):
                """Write ``data`` one byte (``delay`` > 0) or one block at a time, repeated forever when
                ``length`` is None; stop when the client leaves or ``max_sleep`` has passed."""
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.send_header("Connection", "close")
                self.end_headers()
                path, sent, end = self.path, 0, time.monotonic() + server.max_sleep
                step = 1 if delay else len(data)
                try:
                    while time.monotonic() < end and (length is None or sent < length):
                        block = data[sent % len(data):][:step] if length is not None else data
                        self.wfile.write(block)
                        self.wfile.flush()
                        sent += len(block)
                        server.sent[path] = sent
                        if delay:
                            time.sleep(delay)
                except OSError:
                    pass
                self.close_connection = True

            def do_GET(self):  # noqa: N802
                server.requests.append((self.path, self.headers.get("User-Agent", "")))
                parts = self.path.split("?", 1)[0].lstrip("/").split("/", 1)  # a query only makes URLs unique
                kind, name = parts[0], (parts[1] if len(parts) > 1 else "")
                photo = server.photos.get(name)
                ctype = CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
                if kind == "status":
                    return self._send(int(name) if name.isdigit() else 400)
                if kind == "bomb":
                    return self._send(200, bomb_png(), {"Content-Type": "image/png"})
                if kind == "to":
                    return self._send(302, b"", {"Location": f"http://{name}"})
                if kind == "loop":
                    return self._send(302, b"", {"Location": f"/loop/{name}"})
                if kind == "huge":
                    return self._stream(b"\x89PNG\r\n\x1a\n" + b"\0" * 65536, None, 0.0)
                if kind == "html":
                    return self._send(200, b"<!doctype html><html><body>Not an image</body></html>",
                                      {"Content-Type": "image/jpeg"})
                if photo is None:
                    return self._send(404)
                if kind == "img":
                    return self._send(200, photo, {"Content-Type": ctype})
                if kind == "distinct":
                    token = self.path.split("?", 1)[1].encode() if "?" in self.path else b""
                    return self._send(200, distinct_variant(photo, token), {"Content-Type": ctype})
                if kind == "slow":
                    time.sleep(server.slow_seconds)
                    return self._send(200, photo, {"Content-Type": ctype})
                if kind == "redirect":
                    return self._send(302, b"", {"Location": f"/img/{name}"})
                if kind == "noai":
                    return self._send(200, photo, {"Content-Type": ctype, "X-Robots-Tag": "noai"})
                if kind == "tdm":
                    return self._send(200, photo, {"Content-Type": ctype, "TDM-Reservation": "1"})
                if kind == "noai2":
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("X-Robots-Tag", "googlebot: noindex")
                    self.send_header("X-Robots-Tag", "noai")
                    self.send_header("Content-Length", str(len(photo)))
                    self.end_headers()
                    self.wfile.write(photo)
                    return None
                if kind == "drip":
                    return self._stream(photo, len(photo), server.drip_seconds)
                if kind == "truncated":
                    return self._send(200, photo[: len(photo) // 2], {"Content-Type": ctype})
                return self._send(404)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, kind: str, name: str = "") -> str:
        return f"{self.base_url}/{kind}/{name}"

    def __enter__(self) -> LoopbackImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
