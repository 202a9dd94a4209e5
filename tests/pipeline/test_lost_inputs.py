"""Every lost input is counted, and a run with no readable input exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ["images.source=warc", "optout.images=[x_robots]", "optout.documents=[x_robots,meta]",
           "run.use_ray=false"]


def test_empty_input_counted_and_the_run_fails(tmp_path):
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "obelics", "run", "--warc", str(empty), "--out", str(out)]
    for s in OFFLINE:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "no input could be read" in r.stderr and "input_error:empty" in r.stderr
