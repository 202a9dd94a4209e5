"""Near-identical downloaded images counted as one by the image-URL dedup pass (docs/reference.md §9.3 #13).

:func:`canonical_urls` hashes ``(url, bytes)`` pairs one at a time and clusters them (:mod:`filters.dedup.phash`):
the one-pass reference. A run hashes the image table in tasks of a few row groups each and clusters the
hashes in tasks too, in the same order (``pipeline.stages._phash_canonical``,
:mod:`pipeline.images.phash_tasks`; tested equal in ``tests/pipeline/test_stages.py`` and
``tests/pipeline/test_images_phash_tasks.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from filters.dedup.phash import phash, phash_clusters


def uses_phash(cfg) -> bool:
    """Whether the ``dedup`` config ``cfg`` has the image-URL pass count pHash clusters as one image."""
    return bool(cfg.image_url.enabled and cfg.image_url.use_phash and cfg.phash.enabled)


def canonical_urls(images: Iterable[tuple[str, bytes]], cfg) -> dict[str, str]:
    """{url: canonical url} of near-identical images among ``(url, bytes)`` pairs of downloaded images."""
    urls, hashes = [], []
    for url, data in images:
        urls.append(url)
        hashes.append(phash(data, cfg.phash.hash_size))
    return phash_clusters(urls, hashes, cfg.phash.max_distance)
