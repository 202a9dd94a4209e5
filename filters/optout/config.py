"""The ``optout:`` section of a profile."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from obelics.config import ConfigError, Profile, load_profile

# The same honest User-Agent the image downloader sends (pipeline/images/config.py).
DEFAULT_USER_AGENT = (
    "obelics-toolkit/0.1 (+https://github.com/obelics-toolkit/obelics-toolkit; "
    "research dataset builder; honours X-Robots-Tag noai/noimageai)"
)

# Checks by name, in the order they run (local signals first, the paid API last): x_robots (response
# headers), meta (the page's <meta name=robots>), tdmrep (tdm-reservation header/meta,
# /.well-known/tdmrep.json), tdmrep_headers (the tdm-reservation header/meta only, no fetch: what an offline
# run can honour), robots (robots.txt), ai_txt (/ai.txt), spawning (the Spawning API). The original checked
# image URLs with Spawning only and forgot pages.
SOURCES = ("x_robots", "meta", "tdmrep", "tdmrep_headers", "robots", "ai_txt", "spawning")


@dataclass
class HttpConfig:
    """Fetching robots.txt, /.well-known/tdmrep.json and ai.txt (once per origin, cached)."""

    timeout_s: float = 10.0      # per socket read
    max_seconds: float = 30.0    # the whole fetch, redirects included: a dripping server is cut off
    max_bytes: int = 512_000     # RFC 9309 asks parsers to read at least 500 KiB of robots.txt
    max_workers: int = 16        # origins fetched in parallel
    cache_hosts: int = 100_000   # origins kept in the per-host cache (LRU)


@dataclass
class SpawningConfig:
    """The Spawning opt-out API (docs/reference.md §7.1)."""

    endpoint: str = "https://opts-api.spawning.ai/api/v2/query/urls"
    api_key_env: str = "SPAWNING_API_KEY"   # the token is read from this environment variable
    require_key: bool = True     # no key: error at start; false: the check is skipped and counted
    batch_size: int = 1000
    pad_single: bool = True      # the API wants more than one URL: a single URL is padded with ""
    requests_per_second: float = 20.0
    concurrency: int = 10
    timeout_s: float = 60.0
    cache_urls: int = 1_000_000  # answers kept per checker (oldest evicted first): a URL is asked once
    # Retry schedule as [count, seconds] pairs; a 429's Retry-After is honoured when longer.
    retry_delays_s: list[list[float]] = field(default_factory=lambda: [[3, 1.0], [3, 10.0], [3, 60.0]])


@dataclass
class OptOutConfig:
    """Which opt-out signals are honoured for image URLs and document URLs, and how errors count."""

    enabled: bool = True
    user_agent: str = DEFAULT_USER_AGENT    # sent with every request we make
    user_agent_token: str = "obelics-toolkit"  # our product token in robots.txt, ai.txt, X-Robots-Tag
    images: list[str] = field(default_factory=lambda: ["x_robots", "tdmrep", "robots", "ai_txt", "spawning"])
    documents: list[str] = field(
        default_factory=lambda: ["x_robots", "meta", "tdmrep", "robots", "ai_txt", "spawning"])
    image_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex", "none"])
    document_directives: list[str] = field(default_factory=lambda: ["noai", "noindex", "none"])
    # Directives on a *page* (X-Robots-Tag or <meta name=robots>) that opt out the images in it.
    page_image_directives: list[str] = field(default_factory=lambda: ["noimageai", "noimageindex"])
    robots_agents: list[str] = field(default_factory=list)  # other robots.txt agents to obey too (e.g. CCBot)
    # a signal that could not be read (5xx, timeout, API failure): drop, never assume "allowed"
    on_error: Literal["drop", "keep", "fail"] = "drop"
    http: HttpConfig = field(default_factory=HttpConfig)
    spawning: SpawningConfig = field(default_factory=SpawningConfig)

    def __post_init__(self) -> None:
        for key in ("images", "documents"):
            unknown = [s for s in getattr(self, key) if s not in SOURCES]
            if unknown:
                raise ConfigError(f"optout.{key}: unknown checks {unknown} (known: {list(SOURCES)})")

    def check_environment(self, env: Mapping[str, str] | None = None) -> None:
        """ConfigError when the Spawning check is on and its required API key is not in ``env``
        (``os.environ``): a run calls this before any work, the checker again when it starts."""
        if "spawning" not in self.images and "spawning" not in self.documents:
            return
        env = os.environ if env is None else env
        if self.spawning.require_key and not env.get(self.spawning.api_key_env, ""):
            raise ConfigError(
                f"optout: the Spawning check is on but ${self.spawning.api_key_env} is not set; set it, "
                "or remove 'spawning' from optout.images/optout.documents, or set "
                "optout.spawning.require_key=false to skip the check (counted)")


def optout_config(profile: Profile | str | OptOutConfig | None = "default") -> OptOutConfig:
    if isinstance(profile, OptOutConfig):
        return profile
    return load_profile(profile or "default").section("optout", OptOutConfig)
