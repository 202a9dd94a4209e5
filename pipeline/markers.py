"""Completion markers: a unit of work is done when its ``stats.json`` exists (written last, atomically).

Markers and what they cover may be local files or objects (:mod:`obelics.storage`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obelics import storage
from obelics.storage import write_json_atomic

__all__ = ["TMP_GLOB", "clean_temporaries", "is_done", "read_json", "write_json_atomic"]

TMP_GLOB = ".*.tmp"  # the temporaries of unfinished writes (obelics.storage.temporary_sibling)


def read_json(path: str | Path) -> Any:
    return storage.read_json(path)


def is_done(marker: str | Path) -> bool:
    return storage.exists(marker)


def clean_temporaries(folder: str | Path) -> int:
    """Remove temporary files a killed run left behind (``.*.tmp``); returns how many. An object store
    has none: an upload never completed is no object (a bucket lifecycle rule expires its parts)."""
    n = 0
    if storage.is_remote(folder):
        return 0
    folder = Path(folder)
    if folder.exists():
        for p in folder.rglob(TMP_GLOB):
            p.unlink(missing_ok=True)
            n += 1
    return n
