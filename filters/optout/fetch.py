"""Per-origin files (robots.txt, /.well-known/tdmrep.json, ai.txt): fetched once, parsed, cached (LRU).

Every fetch has an *outcome*, counted by the checker as ``optout:fetch:<source>:<outcome>``: ``ok``,
``http_<status>`` (status 300 and over), ``too_big`` (the body was cut at ``max_bytes``),
``timeout`` (a read or the whole fetch), ``address_refused:<reason>`` (:mod:`obelics.netguard`, at the
first hop or a redirect), ``too_many_redirects``, ``connection`` (DNS, refused, reset) or
``error:<ExceptionType>``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from filters.optout.config import HttpConfig


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased; None for anything else."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class Fetched:
    """One GET: ``status`` None means the request failed (``error`` says why); ``outcome`` is its counted
    outcome (see the module docstring)."""

    status: int | None
    body: bytes = b""
    error: str | None = None
    outcome: str = "ok"


def failure_outcome(e: BaseException) -> str:
    """The outcome of a fetch that raised ``e``: the guard's refusal wherever it sits in the chain of
    causes (requests wraps urllib3's errors), else the kind of failure."""
    from obelics.netguard import AddressRefused

    seen, todo = set(), [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, AddressRefused):
            return f"address_refused:{x.reason}"
        todo += [x.__cause__, x.__context__, getattr(x, "reason", None)]
        todo += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]
    if isinstance(e, requests.Timeout) or isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, requests.TooManyRedirects):
        return "too_many_redirects"
    if isinstance(e, (requests.ConnectionError, ConnectionError)):
        return "connection"
    return f"error:{type(e).__name__}"


@dataclass(frozen=True)
class HostError:
    """A per-origin file that could not be read (network error, 5xx, invalid content)."""

    source: str
    message: str


def make_session(user_agent: str, pool: int = 16, allow: list[str] | None = None) -> requests.Session:
    """A requests session sending our User-Agent, sized for ``pool`` parallel connections, that connects
    only to public addresses (:mod:`obelics.netguard`, each redirect hop too; ``allow``: networks let
    through anyway, None: the ``OBELICS_NET_ALLOW`` environment variable)."""
    from obelics.netguard import guard_session

    s = requests.Session()
    s.headers["User-Agent"] = user_agent
    s.max_redirects = 5
    return guard_session(s, allow, pool_connections=pool, pool_maxsize=pool, max_retries=0)


def _read_capped(raw, max_bytes: int, deadline: float) -> tuple[bytes, bool] | None:
    """``(body, cut)``: the body in pieces (at most one socket read each) up to ``max_bytes``, and whether
    there was more; None past ``deadline``."""
    chunks, total = [], 0
    while total <= max_bytes:  # one byte past the cap tells a body that is longer
        if time.monotonic() > deadline:
            return None
        chunk = raw.read1(min(65536, max_bytes + 1 - total), decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)[:max_bytes], total > max_bytes


def fetch(session: requests.Session, url: str, cfg: HttpConfig) -> Fetched:
    """GET ``url`` with a per-read timeout, a whole-fetch deadline (``cfg.max_seconds``) and a body cap
    (longer bodies are cut at ``cfg.max_bytes``); the session decides which addresses may be reached."""
    deadline = time.monotonic() + cfg.max_seconds
    try:
        with session.get(url, timeout=cfg.timeout_s, stream=True, allow_redirects=True) as r:
            if r.status_code >= 300:
                return Fetched(r.status_code, outcome=f"http_{r.status_code}")
            read = _read_capped(r.raw, cfg.max_bytes, deadline)
            if read is None:
                return Fetched(None, error=f"Timeout: the whole fetch took over {cfg.max_seconds:g} s",
                               outcome="timeout")
            body, cut = read
            return Fetched(r.status_code, body, outcome="too_big" if cut else "ok")
    except (requests.RequestException, OSError, ValueError) as e:
        return Fetched(None, error=f"{type(e).__name__}: {e}", outcome=failure_outcome(e))


class HostCache:
    """``(origin, path) -> parsed value`` with LRU eviction; parse errors are cached as :class:`HostError`."""

    def __init__(self, session: requests.Session, cfg: HttpConfig,
                 on_fetch: Callable[[str, str], None] | None = None):
        """``on_fetch(path, outcome)`` is called after each fetch (the checker counts the outcomes)."""
        self.session, self.cfg, self.on_fetch = session, cfg, on_fetch
        self._data: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.fetches = 0

    def cached(self, origin: str, path: str) -> bool:
        with self._lock:
            return (origin, path) in self._data

    def get(self, origin: str, path: str, parse: Callable[[Fetched], Any]) -> Any:
        key = (origin, path)
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        fetched = fetch(self.session, origin + path, self.cfg)
        if self.on_fetch is not None:
            self.on_fetch(path, fetched.outcome)
        value = parse(fetched)
        with self._lock:
            self.fetches += 1
            self._data[key] = value
            while len(self._data) > self.cfg.cache_hosts:
                self._data.popitem(last=False)
        return value
