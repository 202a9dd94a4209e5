"""Completion markers: a unit of work is done when its ``stats.json`` exists (written last, atomically)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
    os.replace(tmp, path)
    return path


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
        for p in folder.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n
