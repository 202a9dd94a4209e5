"""Progress lines while a stage runs: done/total, documents/s, ETA; one log line per finished unit."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("obelics.run")


class StageProgress:
    """Tracks one stage's finished units and documents, and logs a line per finished unit."""

    def __init__(self, stage: str, total: int, already_done: int = 0):
        self.stage = stage
        self.total = total
        self.done = already_done
        self.docs = 0
        self.start = time.monotonic()
        self._ran = 0

    def update(self, unit: str, docs_in: int, docs_out: int, seconds: float) -> str:
        self.done += 1
        self._ran += 1
        self.docs += docs_in
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.docs / elapsed
        remaining = self.total - self.done
        eta = (elapsed / self._ran) * remaining if self._ran else float("nan")
        line = (f"[{self.stage}] {self.done}/{self.total} {unit}: {docs_in} -> {docs_out} docs in {seconds:.1f}s"
                f" | {rate:.1f} docs/s | ETA {eta:.0f}s")
        log.info(line)
        return line

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.start
        return {"stage": self.stage, "units": self.total, "docs": self.docs, "seconds": round(elapsed, 3),
                "docs_per_s": round(self.docs / elapsed, 2) if elapsed > 0 else None}
