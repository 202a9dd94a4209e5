"""One opt-out checker combining every signal, with a per-origin cache.

Order for each URL (the first signal found is the reason; cheap local signals first, the API last):

1. ``x_robots``: the URL's own response headers (``X-Robots-Tag``), and for a page its meta robots;
2. ``meta``: the page's ``<meta name="robots">`` / ``<meta name="<our token>">`` directives;
3. ``tdmrep``: ``tdm-reservation: 1`` header, ``<meta name="tdm-reservation">``, then the origin's
   ``/.well-known/tdmrep.json``;
4. ``robots``: the origin's robots.txt for our agent (and ``robots_agents``), RFC 9309 semantics:
   4xx means no rules, 5xx or no answer means "could not read" (an error, see below);
5. ``ai_txt``: the origin's ``/ai.txt``, same syntax and error rules;
6. ``spawning``: the Spawning API, batched, for the URLs still allowed.

A signal that cannot be read is an *error*, counted in :attr:`OptOutChecker.errors` by source and
resolved by ``on_error``: ``drop`` (reason ``optout:error:<source>``), ``keep`` (counted, kept), or
``fail`` (raise :class:`OptOutError`). Nothing is treated as "allowed" silently. Every per-origin file
fetch is also counted by its outcome in :attr:`OptOutChecker.events` as ``optout:fetch:<source>:<outcome>``
(``ok``, ``http_404``, ``timeout``, ``too_big``, ``address_refused:loopback``...; see
:mod:`filters.optout.fetch`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import requests

from filters.base import Verdict
from filters.optout import tdmrep
from filters.optout.config import OptOutConfig
from filters.optout.fetch import Fetched, HostCache, HostError, make_session, origin_of
from filters.optout.html_meta import meta_robots_values, meta_signals
from filters.optout.robots import RobotsRules, normalize_ai_txt
from filters.optout.spawning import SpawningClient
from filters.optout.x_robots import Headers, directives_for, header_values, x_robots_verdict

Kind = Literal["image", "document"]
HOST_FILES = {"tdmrep": "/.well-known/tdmrep.json", "robots": "/robots.txt", "ai_txt": "/ai.txt"}
_SOURCE_OF_PATH = {path: source for source, path in HOST_FILES.items()}


class OptOutError(RuntimeError):
    """Raised under ``on_error: fail`` when a signal cannot be read."""


def _decode(body: bytes) -> str:
    return body.decode("utf-8-sig", "replace")


class OptOutChecker:
    """Decides, per URL, whether its owner opted out; see the module docstring for the order."""

    def __init__(self, cfg: OptOutConfig | None = None, session: requests.Session | None = None,
                 spawning: SpawningClient | None = None, env: Mapping[str, str] | None = None):
        self.cfg = cfg or OptOutConfig()
        self.session = session or make_session(self.cfg.user_agent, self.cfg.http.max_workers)
        self.hosts = HostCache(self.session, self.cfg.http, self._fetched)
        self.errors: Counter = Counter()
        self.events: Counter = Counter()
        self._lock = threading.Lock()
        self.agents = [self.cfg.user_agent_token] + list(self.cfg.robots_agents)
        self.spawning = spawning
        self._spawning_cache: OrderedDict[str, bool] = OrderedDict()
        uses_spawning = "spawning" in self.cfg.images or "spawning" in self.cfg.documents
        if uses_spawning and self.spawning is None:
            env = os.environ if env is None else env
            key = env.get(self.cfg.spawning.api_key_env, "")
            if key:
                self.spawning = SpawningClient(self.cfg.spawning, key, self.cfg.user_agent)
            else:
                self.cfg.check_environment(env)

    # -- helpers -------------------------------------------------------------------------------
    def sources(self, kind: Kind) -> list[str]:
        return list(self.cfg.images if kind == "image" else self.cfg.documents)

    def _error(self, source: str, n: int = 1) -> Verdict:
        with self._lock:
            self.errors[source] += n
        if self.cfg.on_error == "fail":
            raise OptOutError(f"opt-out signal {source!r} could not be read (optout.on_error=fail)")
        return f"optout:error:{source}" if self.cfg.on_error == "drop" else None

    def _event(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.events[name] += n

    # -- per-origin files ----------------------------------------------------------------------
    def _fetched(self, path: str, outcome: str) -> None:
        """Count one per-origin file fetch by its outcome: ``optout:fetch:<source>:<outcome>``."""
        self._event(f"optout:fetch:{_SOURCE_OF_PATH.get(path, path)}:{outcome}")

    def _parse_robots(self, source: str):
        def parse(f: Fetched):
            if f.status is None:
                return HostError(source, f.error or "unreachable")
            if f.status >= 500:
                return HostError(source, f"HTTP {f.status}")
            if f.status >= 400:
                return RobotsRules.allow_all(self.agents)  # RFC 9309: unavailable -> no rules
            text = _decode(f.body)
            return RobotsRules(normalize_ai_txt(text) if source == "ai_txt" else text, self.agents)
        return parse

    @staticmethod
    def _parse_tdmrep(f: Fetched):
        if f.status is None:
            return HostError("tdmrep", f.error or "unreachable")
        if f.status >= 500:
            return HostError("tdmrep", f"HTTP {f.status}")
        if f.status >= 400:
            return []
        try:
            return tdmrep.parse_tdmrep(f.body)
        except tdmrep.TdmRepError as e:
            return HostError("tdmrep", str(e))

    def host_file(self, origin: str, source: str):
        """The parsed per-origin file for ``source`` (fetched on first use, then cached)."""
        parse = self._parse_tdmrep if source == "tdmrep" else self._parse_robots(source)
        return self.hosts.get(origin, HOST_FILES[source], parse)

    def prefetch(self, urls: Iterable[str], kind: Kind) -> None:
        """Fetch the per-origin files the URLs need, origins in parallel."""
        wanted = [s for s in self.sources(kind) if s in HOST_FILES]
        jobs = {(o, s) for u in urls if (o := origin_of(u)) for s in wanted
                if not self.hosts.cached(o, HOST_FILES[s])}
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.http.max_workers)) as pool:
            list(pool.map(lambda job: self.host_file(*job), sorted(jobs)))

    # -- checks --------------------------------------------------------------------------------
    def local_verdict(self, url: str, kind: Kind, headers: Headers | None = None,
                      html: str | bytes | None = None, meta: Mapping[str, list[str]] | None = None) -> Verdict:
        """Signals carried by the response itself: X-Robots-Tag, meta robots, TDMRep header/meta."""
        sources = self.sources(kind)
        disallowed = self.cfg.image_directives if kind == "image" else self.cfg.document_directives
        token = self.cfg.user_agent_token
        signals = dict(meta) if meta is not None else (
            meta_signals(html, token) if html is not None and (
                "meta" in sources or "tdmrep" in sources or "tdmrep_headers" in sources) else {})
        if "x_robots" in sources:
            verdict = x_robots_verdict(headers, token, disallowed)
            if verdict:
                return verdict
        if "meta" in sources:
            found = directives_for(meta_robots_values(signals, token), token)
            for d in disallowed:
                if d in found:
                    return f"optout:meta-robots:{d}"
        if "tdmrep" in sources or "tdmrep_headers" in sources:  # the latter never fetches tdmrep.json
            verdict = tdmrep.header_verdict(headers) or tdmrep.meta_verdict(signals)
            if verdict:
                return verdict
        return None

    def page_blocks_images(self, headers: Headers | None = None, html: str | bytes | None = None,
                           meta: Mapping[str, list[str]] | None = None) -> Verdict:
        """``optout:page:<directive>`` when a page says its images may not be used (e.g. noimageai)."""
        token = self.cfg.user_agent_token
        signals = dict(meta) if meta is not None else (meta_signals(html, token) if html is not None else {})
        found = directives_for(header_values(headers, "x-robots-tag") + meta_robots_values(signals, token), token)
        for d in self.cfg.page_image_directives:
            if d in found:
                return f"optout:page:{d}"
        return None

    def host_verdict(self, url: str, kind: Kind) -> Verdict:
        """Signals from the URL's origin: tdmrep.json, robots.txt, ai.txt (in that order)."""
        origin = origin_of(url)
        if origin is None:
            return None
        for source in self.sources(kind):
            if source not in HOST_FILES:
                continue
            value = self.host_file(origin, source)
            if isinstance(value, HostError):
                verdict = self._error(source)
                if verdict:
                    return verdict
                continue
            if source == "tdmrep":
                verdict = tdmrep.rules_verdict(value, url)
                if verdict:
                    return verdict
            elif not value.allowed(url):
                return "optout:robots.txt" if source == "robots" else "optout:ai.txt"
        return None

    def check_urls(self, urls: Iterable[str], kind: Kind,
                   headers_by_url: Mapping[str, Headers] | None = None,
                   html_by_url: Mapping[str, str | bytes] | None = None,
                   meta_by_url: Mapping[str, Mapping[str, list[str]]] | None = None) -> dict[str, Verdict]:
        """``{url: verdict}`` for the unique ``urls`` (None: allowed)."""
        headers_by_url, html_by_url, meta_by_url = headers_by_url or {}, html_by_url or {}, meta_by_url or {}
        urls = list(dict.fromkeys(u for u in urls if u))
        out: dict[str, Verdict] = {}
        for u in urls:
            out[u] = self.local_verdict(u, kind, headers_by_url.get(u), html_by_url.get(u), meta_by_url.get(u))
        pending = [u for u in urls if out[u] is None]
        self.prefetch(pending, kind)
        for u in pending:
            out[u] = self.host_verdict(u, kind)
        pending = [u for u in pending if out[u] is None]
        if "spawning" in self.sources(kind) and pending:
            if self.spawning is None:
                self._event("optout:spawning_skipped_no_key", len(pending))
            else:
                opted = {u: self._spawning_cache[u] for u in pending if u in self._spawning_cache}
                fresh, errors = self.spawning.query([u for u in pending if u not in opted])
                opted.update(fresh)
                with self._lock:
                    self._spawning_cache.update(fresh)
                    while len(self._spawning_cache) > self.cfg.spawning.cache_urls:
                        self._spawning_cache.popitem(last=False)
                for u in pending:
                    if u in errors:
                        out[u] = self._error("spawning")
                    elif opted.get(u):
                        out[u] = "optout:spawning"
        return out

    def check_url(self, url: str, kind: Kind = "image", headers: Headers | None = None,
                  html: str | bytes | None = None) -> Verdict:
        """The verdict for one URL (see :meth:`check_urls` to batch)."""
        return self.check_urls([url], kind, {url: headers} if headers else None,
                               {url: html} if html is not None else None).get(url)
