"""Completion markers: a unit of work is done when its ``stats.json`` exists (written last, atomically)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obelics.storage import write_json_atomic

__all__ = ["TMP_GLOB", "clean_temporaries", "is_done", "read_json", "write_json_atomic"]

TMP_GLOB = ".*.tmp"  # the temporaries of unfinished writes (obelics.storage.temporary_sibling)


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_done(marker: str | Path) -> bool:
    return Path(marker).exists()


def clean_temporaries(folder: str | Path) -> int:
    """Remove temporary files a killed run left behind (``.*.tmp``); returns how many."""
    n = 0
    folder = Path(folder)
    if folder.exists():
        for p in folder.rglob(TMP_GLOB):
            p.unlink(missing_ok=True)
            n += 1
    return n
