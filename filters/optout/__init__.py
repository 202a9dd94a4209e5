"""Opt-out: X-Robots-Tag, meta robots, TDMRep, robots.txt, ai.txt and the Spawning API.

Public entry points: :class:`OptOutChecker` (``check_urls(urls, "image"|"document", ...)``),
:func:`optout_filter_images`, :func:`optout_filter_documents`, :class:`OptOutConfig`.
"""

from filters.optout.checker import OptOutChecker, OptOutError
from filters.optout.config import OptOutConfig, optout_config
from filters.optout.html_meta import meta_signals
from filters.optout.spawning import SpawningClient, SpawningError
from filters.optout.stage import optout_filter_documents, optout_filter_images

__all__ = [
    "OptOutChecker",
    "OptOutConfig",
    "OptOutError",
    "SpawningClient",
    "SpawningError",
    "meta_signals",
    "optout_config",
    "optout_filter_documents",
    "optout_filter_images",
]
