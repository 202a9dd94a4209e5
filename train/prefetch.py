"""Background batch preparation that keeps resumes exact.

A thread pulls rows from the mixture and collates them (image decode + resize, tokenized rows → tensors)
``depth`` batches ahead of the training step. Rows handed out by the mixture but not yet consumed by
the trainer are "in flight"; a checkpoint stores the mixture's state *plus* those rows, and a resumed
run consumes them first, so the sequence of batches is the same as without prefetching.
"""

from __future__ import annotations

import queue
import threading
from collections import deque

from train.collate import Unit


class Prefetcher:
    """``get()`` → (rows, batch) in mixture order, prepared by one background thread."""

    def __init__(self, mixture, collate, depth: int = 2, pending: list[list[Unit]] | None = None):
        self.mixture, self.collate, self.depth = mixture, collate, max(1, depth)
        self.lock = threading.Lock()
        self.inflight: deque[list[Unit]] = deque()  # taken from the mixture, not yet consumed
        self.pending: deque[list[Unit]] = deque(pending or [])  # restored from a checkpoint: served first
        self.q: queue.Queue = queue.Queue(self.depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name="prefetch", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    rows = self.pending.popleft() if self.pending else self.mixture.next_batch_rows()
                    if rows is None:
                        self.q.put(None)
                        return
                    self.inflight.append(rows)
                batch = self.collate(rows)
                while not self.stop.is_set():
                    try:
                        self.q.put((rows, batch), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # surfaced in the training thread
            self.q.put(e)

    def get(self):
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            return None
        with self.lock:
            self.inflight.popleft()
        return item

    def state_dict(self) -> dict:
        """Mixture state + rows already drawn from it but not consumed by training (in order)."""
        with self.lock:
            return {"mixture": self.mixture.state_dict(),
                    "pending": [[unit_dict(u) for u in rows] for rows in (*self.inflight, *self.pending)]}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def unit_dict(u: Unit) -> dict:
    return {"tokens": u.tokens, "images": u.images, "source": u.source, "starts": u.starts, "mask": u.mask}


def pending_from_state(state: dict) -> list[list[Unit]]:
    return [[Unit(**u) for u in rows] for rows in state.get("pending", [])]
