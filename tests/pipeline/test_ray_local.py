"""A local Ray started by the pipeline listens on loopback only, with no dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # one Ray start in a subprocess (about a minute on a busy machine)

ROOT = Path(__file__).resolve().parents[2]
PROBE = r"""
import json, psutil
from pipeline.executor import ensure_ray
import ray
ensure_ray(num_cpus=1)
ray.get(ray.remote(lambda: 1).remote())
found = []
for p in [psutil.Process()] + psutil.Process().children(recursive=True):
    try:
        found += [(c.laddr.ip, p.name()) for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps(found))
"""


def test_local_ray_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OBELICS_RAY_DASHBOARD")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(found) >= 3  # GCS, raylet, a worker at least
    assert {ip for ip, _ in found} <= {"127.0.0.1", "::ffff:127.0.0.1"}, found
    assert not any("dashboard" in name.lower() for _, name in found)
