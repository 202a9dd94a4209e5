"""Common Crawl access and shard planning.

A snapshot (``CC-MAIN-2023-06``) publishes ``crawl-data/<snapshot>/warc.paths.gz``: one WARC path per
line. Shard ``k`` of ``n`` takes every path whose index ``i`` satisfies ``i % n == k`` — a stable,
dependency-free split, so every machine of a cluster computes the same plan on its own.

Every HTTP(S) fetch here (``warc.paths.gz``; the WARCs themselves in :mod:`obelics.warc`) goes through the
address guard (:mod:`obelics.netguard`): only public addresses, checked after DNS and at every redirect.
The user chooses the endpoint, but a private one (a mirror at ``http://10.0.0.5/``) must be allowed
deliberately with ``OBELICS_NET_ALLOW=10.0.0.0/8``, and a redirect never leaves for a private address
that is not on that list. ``s3://`` (Common Crawl's bucket, or an S3-compatible server) is read through
fsspec/botocore at the endpoint the user configured (``AWS_ENDPOINT_URL``, else AWS): that endpoint is a
deliberate choice and is not guarded; S3 answers with data or errors, and botocore follows only its
region redirects, which stay on AWS.
"""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

DEFAULT_CC_BASE_URL = "https://data.commoncrawl.org/"


CC_S3_BASE = "s3://commoncrawl/"


def cc_base_url(base_url: str | None = None) -> str:
    """Where Common Crawl is read: ``base_url``, else ``OBELICS_CC_BASE_URL`` (a mirror, tests), else
    ``s3://commoncrawl/`` when AWS credentials are given and no other S3 endpoint is configured, else
    ``https://data.commoncrawl.org/``."""
    from obelics.warc import aws_credentials_given

    url = base_url or os.environ.get("OBELICS_CC_BASE_URL")
    if not url:
        other_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        url = CC_S3_BASE if aws_credentials_given() and not other_endpoint else DEFAULT_CC_BASE_URL
    return url if url.endswith("/") else url + "/"


def cc_url(path: str, base_url: str | None = None) -> str:
    """Full URL of a Common Crawl path such as ``crawl-data/CC-MAIN-.../x.warc.gz``."""
    if path.startswith(("http://", "https://")):
        return path
    return cc_base_url(base_url) + path.lstrip("/")


def http_get(url: str, retries: int = 5, timeout: float = 60.0, backoff: float = 1.0,
             session: requests.Session | None = None, allow: list[str] | None = None) -> bytes:
    """GET ``url`` with retries on connection errors, 429 and 5xx; raise on other errors.

    Only public addresses are reached, every redirect hop checked (``allow``: networks let through
    anyway, None: ``OBELICS_NET_ALLOW``); a refusal is not retried: it raises ``ValueError`` saying how
    to allow a private mirror. A given ``session`` is used as it is.
    """
    from obelics.netguard import AddressRefused, guarded_session

    if session is None:
        with guarded_session(allow) as own:
            return http_get(url, retries, timeout, backoff, own)
    last: Exception | None = None
    for attempt in range(retries):
        try:
            try:
                r = session.get(url, timeout=timeout)
            except AddressRefused as e:
                raise ValueError(f"GET {url}: {e}: only public addresses are fetched; a mirror on a private "
                                 "network must be allowed with OBELICS_NET_ALLOW=<network>") from e
            if r.status_code == 200:
                return r.content
            if r.status_code in (429, 500, 502, 503, 504):
                last = RuntimeError(f"GET {url}: HTTP {r.status_code}")
            else:
                raise FileNotFoundError(f"GET {url}: HTTP {r.status_code}")
        except (requests.ConnectionError, requests.Timeout) as e:
            last = e
        time.sleep(backoff * (2 ** attempt))
    raise RuntimeError(f"GET {url} failed after {retries} attempts: {last}")


def fetch_warc_paths(snapshot: str, base_url: str | None = None, cache_dir: str | Path | None = None) -> list[str]:
    """The WARC paths of a snapshot, from its ``warc.paths.gz`` (cached in ``cache_dir`` if given; both
    may be on object storage)."""
    from obelics import storage

    rel = f"crawl-data/{snapshot}/warc.paths.gz"
    data = None
    cached = storage.join(cache_dir, snapshot, "warc.paths.gz") if cache_dir else None
    if cached and storage.exists(cached):
        data = storage.read_bytes(cached)
    if data is None:
        from obelics.warc import resolve_source

        url = resolve_source(cc_url(rel, base_url))
        data = http_get(url) if url.startswith(("http://", "https://")) else storage.read_bytes(url)
        if cached:
            storage.write_bytes_atomic(cached, data)
    with gzip.open(io.BytesIO(data), "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@dataclass(frozen=True)
class ShardPlan:
    """The WARC inputs of shard ``shard`` of ``num_shards``."""

    shard: int
    num_shards: int
    inputs: tuple[str, ...]

    def name(self) -> str:
        return f"shard-{self.shard:05d}-of-{self.num_shards:05d}"


def plan_shard(paths: Sequence[str], shard: int, num_shards: int, limit: int | None = None) -> ShardPlan:
    """Shard ``shard`` of ``num_shards``: the paths with ``index % num_shards == shard`` (optionally the first ``limit``)."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in [0, {num_shards})")
    chosen = [p for i, p in enumerate(paths) if i % num_shards == shard]
    if limit is not None:
        chosen = chosen[:limit]
    return ShardPlan(shard, num_shards, tuple(chosen))


def input_name(path: str) -> str:
    """A filesystem-safe, unique-enough name for one input WARC (used for per-input outputs)."""
    base = path.rstrip("/").split("/")[-1]
    for suffix in (".warc.gz", ".warc", ".gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    import hashlib

    return f"{base[:80]}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
