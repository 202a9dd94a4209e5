"""The ``images:`` section of a profile: how image URLs are fetched and turned into the image table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_USER_AGENT = (
    "obelics-toolkit/0.1 (+https://github.com/obelics-toolkit/obelics-toolkit; "
    "research dataset builder; honours X-Robots-Tag noai/noimageai)"
)


@dataclass
class ImagesConfig:
    """Image download (img2dataset), offline WARC source and image-table checks.

    Defaults equal the ``default`` profile; ``obelics-2023`` re-encodes to JPEG 95 as the original did.
    """

    source: Literal["web", "warc"] = "web"  # web: img2dataset; warc: image records of the input WARCs (offline)
    user_agent: str = DEFAULT_USER_AGENT    # the whole User-Agent header sent with every request
    user_agent_token: str = "obelics-toolkit"  # img2dataset's token: scopes `X-Robots-Tag: token: noai`
    disallowed_header_directives: list[str] = field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"])
    timeout: float = 10.0                   # seconds per socket read
    max_seconds: float | None = 60.0        # the whole download, redirects included: stopped when crossed
    retries: int = 1                        # extra attempts after a failed download
    processes_count: int = 0                # 0: one per CPU
    thread_count: int = 64                  # download threads per process
    number_sample_per_shard: int = 10000    # URLs per img2dataset shard (its resume unit)
    reencode: bool = False                  # False: keep the original bytes and format
    encode_format: Literal["jpg", "png", "webp"] = "jpg"  # when reencode
    encode_quality: int = 95                # when reencode
    extract_exif: bool = False
    max_bytes: int | None = 20_000_000      # larger bodies: the transfer stops, "too_large_bytes" (null: no cap)
    max_pixels: int | None = 100_000_000    # larger images are dropped as "too_many_pixels" (null: no cap)
    # never decode more than this (every profile, obelics-2023 too although its build had no cap): an image
    # whose header declares more is dropped as "too_many_pixels" before img2dataset or PIL decodes it
    max_decode_pixels: int = 100_000_000

    def decode_cap(self) -> int:
        """The pixel count above which an image is refused before any decoding."""
        return min(self.max_pixels or self.max_decode_pixels, self.max_decode_pixels)
    check_truncation: bool = True           # drop images whose bytes end before the format's end marker
    record_headers: list[str] = field(default_factory=lambda: [
        "x-robots-tag", "tdm-reservation", "tdm-policy", "content-type", "content-length", "last-modified"])
