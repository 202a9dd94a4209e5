"""Per-shard ``stats.json``: what a writer put in a file, written atomically beside it."""

from __future__ import annotations

import os


def stats_path_for(path: str | os.PathLike) -> str:
    """``x/shard-00000.parquet`` -> ``x/shard-00000.stats.json``."""
    head, name = os.path.split(os.fspath(path))
    return os.path.join(head, name.split(".", 1)[0] + ".stats.json")


def count_words(texts) -> int:
    """Whitespace-separated words over the text nodes of a document."""
    return sum(len(t.split()) for t in texts or () if t)


def document_counts(rows) -> dict:
    """Documents, text nodes, image nodes and words over document rows (dicts with texts/images)."""
    docs = images = texts = words = 0
    for r in rows:
        docs += 1
        images += sum(1 for i in r["images"] or () if i is not None)
        texts += sum(1 for t in r["texts"] or () if t is not None)
        words += count_words(r["texts"])
    return {"documents": docs, "images": images, "texts": texts, "words": words}
