"""Running one bench measurement in a fresh interpreter (so peak memory is the measurement's own)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_measurement(cmd: list[str], env: dict | None = None) -> dict | None:
    """Run ``cmd`` (a bench module in ``--one`` mode) and return the JSON of its ``RESULT`` line;
    prints the tail of its output and returns None when it gives none."""
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        print(out.stdout[-2000:], out.stderr[-4000:])
        return None
    return json.loads(line[7:])


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak (``VmRSS``, ``VmHWM``), in MB (Linux)."""
    with open("/proc/self/status") as f:
        d = dict(x.split(":", 1) for x in f)
    return int(d["VmRSS"].split()[0]) / 1024, int(d["VmHWM"].split()[0]) / 1024


class Periodic:
    """A context manager calling :meth:`tick` every ``interval`` seconds on a daemon thread (first at once,
    last when the block ends), for the benches' samplers."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
