"""Per-shard ``stats.json``: what a writer put in a file, written atomically beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from obelics.parquet import atomic_path


def write_json_atomic(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def stats_path_for(path: str | Path) -> Path:
    """``x/shard-00000.parquet`` -> ``x/shard-00000.stats.json``."""
    path = Path(path)
    return path.with_name(path.name.split(".", 1)[0] + ".stats.json")


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
