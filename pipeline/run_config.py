"""The ``run`` section of a profile: the ops in order, and how units are scheduled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Cheap text filters and text dedup come before the image download, which saves most of the bandwidth;
# document checks are re-applied once images are merged and after the dedup passes changed documents
# (the original never re-checked).
DEFAULT_STAGES = [
    "extract", "url_ban", "text_filters", "dedup_url", "dedup_minhash", "image_table", "merge_images",
    "image_filters", "optout", "nsfw", "doc_filters", "dedup_image_urls", "dedup_paragraphs",
    "dedup_image_sets", "recheck", "final",
]


@dataclass
class RunConfig:
    """The ``run`` section of a profile."""

    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))  # ops in order (pipeline/stages.py)
    workers: int | None = None            # concurrent units on Ray (None: one per CPU)
    use_ray: bool = True                  # False: units inline, global passes local: no Ray at all
    output_shard_docs: int = 10000        # documents per output Parquet/WebDataset shard
    # --- before the run (pipeline/preflight.py) ---
    preflight_network: bool = True        # a DNS + connect check of the hosts a networked run needs first
    network_probe_url: str = "https://data.commoncrawl.org/"  # probed when only page/image hosts are needed
    builtin_lm: Literal["warn", "refuse", "allow"] = "warn"  # perplexity.model=auto without the real model
    # --- systemic loss (pipeline/loss.py): a stage dropping much of its input to errors ---
    on_systemic_loss: Literal["fail", "warn"] = "fail"
    max_error_share: float = 0.5          # of a stage's input (at one level: documents, images...)
    min_error_drops: int = 10             # fewer error drops never count as systemic (tiny runs)
    error_reasons: list[str] = field(default_factory=lambda: [
        "optout:error:*", "input_error:*", "dns", "timeout", "connection_refused", "connection_reset", "tls",
        "incomplete_read", "download_error", "not_downloaded", "http_5??"])
