"""Client for the Spawning opt-out API (docs/reference.md §7.1), fixed where the original was weak.

POSTs newline-joined URLs (``batch_size`` per request, a single URL padded with ``""``) with
``Authorization: API <token>``; reads ``urls[i].optOut``. Requests are rate-limited (a shared
minimum interval between request starts), run ``concurrency`` at a time, and retried on network
errors, 408, 429 and 5xx (honouring ``Retry-After``) along ``retry_delays_s``. A batch that still
fails is *reported* (every URL in it gets an error), never read as "allowed"; the caller's
``on_error`` decides. The retry loop is hand-written because the schedule (counts of fixed delays,
as the original's 5x1 s, 5x10 s, 10x10 min, 10x1 h) is not urllib3's exponential backoff.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

import requests

from filters.optout.config import SpawningConfig


class SpawningError(RuntimeError):
    """A batch that could not be answered after every retry, or a non-retryable answer."""


class RateLimiter:
    """At most ``rate`` request starts per second across threads (even spacing, no burst)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def retry_delays(schedule: Iterable[Iterable[float]]) -> list[float]:
    """``[[5, 1], [5, 10]]`` -> ``[1]*5 + [10]*5``."""
    out: list[float] = []
    for count, seconds in schedule:
        out += [float(seconds)] * int(count)
    return out


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return 0.0


class SpawningClient:
    """Batched, rate-limited, retried queries; :meth:`query` returns ``(opted_out, errors)`` per URL."""

    def __init__(self, cfg: SpawningConfig, api_key: str, user_agent: str,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        self.cfg, self.api_key, self.user_agent = cfg, api_key, user_agent
        if session is None:  # only public addresses (obelics.netguard; OBELICS_NET_ALLOW for a mirror)
            from obelics.netguard import guarded_session

            session = guarded_session()
        self.session = session
        self.sleep = sleep
        self.limiter = RateLimiter(cfg.requests_per_second, sleep=sleep)
        self.delays = retry_delays(cfg.retry_delays_s)
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def _post(self, batch: list[str]) -> list[bool]:
        body = "\n".join(batch + ([""] if self.cfg.pad_single and len(batch) == 1 else []))
        headers = {"Authorization": f"API {self.api_key}", "Content-Type": "text/plain",
                   "User-Agent": self.user_agent}
        last = "no attempt"
        for attempt in range(len(self.delays) + 1):
            if attempt:
                self._count("retries")
            self.limiter.acquire()
            self._count("requests")
            wait = self.delays[attempt] if attempt < len(self.delays) else 0.0
            try:
                r = self.session.post(self.cfg.endpoint, data=body.encode("utf-8"), headers=headers,
                                      timeout=self.cfg.timeout_s)
            except requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        return self._parse(batch, r.json())
                    except (ValueError, KeyError, TypeError) as e:
                        last = f"bad response: {e}"
                elif r.status_code == 429:
                    self._count("rate_limited")
                    last = "HTTP 429"
                    wait = max(wait, _retry_after(r.headers.get("Retry-After")))
                elif r.status_code == 408 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    wait = max(wait, _retry_after(r.headers.get("Retry-After")))
                else:  # 401, 403, 400...: retrying cannot help
                    raise SpawningError(f"Spawning API answered HTTP {r.status_code}: {r.text[:200]!r}")
            if attempt < len(self.delays):
                self.sleep(min(wait, max(self.delays)))  # a Retry-After longer than our schedule is capped
        raise SpawningError(f"Spawning API failed after {len(self.delays) + 1} attempts: {last}")

    @staticmethod
    def _parse(batch: list[str], payload: dict) -> list[bool]:
        entries = payload["urls"]
        by_url = {e["url"]: bool(e["optOut"]) for e in entries if isinstance(e, dict) and "url" in e}
        out = []
        for i, url in enumerate(batch):
            if url in by_url:
                out.append(by_url[url])
            elif i < len(entries) and isinstance(entries[i], dict) and "optOut" in entries[i]:
                out.append(bool(entries[i]["optOut"]))
            else:
                raise KeyError(f"no answer for {url!r}")
        return out

    def query(self, urls: Iterable[str]) -> tuple[dict[str, bool], dict[str, str]]:
        """``({url: opted_out}, {url: error})`` for the unique non-empty ``urls``."""
        unique = [u for u in dict.fromkeys(urls) if u]
        size = max(1, self.cfg.batch_size)
        batches = [unique[i:i + size] for i in range(0, len(unique), size)]
        result: dict[str, bool] = {}
        errors: dict[str, str] = {}

        def run(batch: list[str]) -> None:
            try:
                flags = self._post(batch)
            except SpawningError as e:
                self._count("failed_batches")
                errors.update(dict.fromkeys(batch, str(e)))
                return
            result.update(zip(batch, flags))

        if len(batches) <= 1 or self.cfg.concurrency <= 1:
            for b in batches:
                run(b)
        else:
            with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
                list(pool.map(run, batches))
        return result, errors
