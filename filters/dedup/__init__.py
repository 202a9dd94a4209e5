"""Deduplication algorithms: URL, image-URL frequency, paragraphs per domain, set of images, MinHash.

Each pass is a pure function over documents held in memory (a list of WebDocument or a
DOCUMENT_SCHEMA Arrow table) returning a :class:`~filters.dedup.common.DedupResult` (kept table,
removed ``(doc_id, reason)``, FilterStats): ``url.url_dedup``, ``image_url.image_url_dedup``,
``paragraphs.paragraph_dedup``, ``image_set.image_set_dedup``, ``minhash.minhash_dedup``;
``passes.run_passes`` runs them in profile order. The per-partition decision functions they are
built from (``url_removals``, ``too_frequent``, ``duplicated_paragraphs``, ``image_set_duplicates``,
MinHash band keys and ``bucket_edges``) are what ``pipeline.dedup`` runs on Ray. ``phash`` clusters
near-identical downloaded images; the profile section is ``config.DedupConfig``.
"""
