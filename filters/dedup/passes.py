"""All passes in order over documents held in memory (the reference the Ray passes are tested against)."""

from __future__ import annotations

from filters.dedup.common import DedupResult, as_table, concat_removed
from filters.dedup.config import DedupConfig
from filters.dedup.image_set import image_set_dedup
from filters.dedup.image_url import image_url_dedup
from filters.dedup.minhash import minhash_dedup
from filters.dedup.paragraphs import paragraph_dedup
from filters.dedup.url import url_dedup

PASS_FUNCTIONS = {
    "url": url_dedup,
    "image_url": image_url_dedup,
    "paragraphs": paragraph_dedup,
    "image_set": image_set_dedup,
    "minhash": minhash_dedup,
}


def run_passes(docs, cfg: DedupConfig | None = None, passes: list[str] | None = None,
               canonical: dict[str, str] | None = None) -> tuple[DedupResult, list]:
    """Run the enabled passes (``passes`` or ``cfg.order``); returns the final result and per-pass stats."""
    cfg = cfg or DedupConfig()
    table = as_table(docs)
    removed, stats = [], []
    for name in passes or cfg.order:
        if not getattr(cfg, name).enabled:
            continue
        fn = PASS_FUNCTIONS[name]
        res = fn(table, cfg, canonical) if name == "image_url" else fn(table, cfg)
        table = res.table
        removed.append(res.removed)
        stats.append(res.stats)
    return DedupResult(table, concat_removed(removed)), stats
