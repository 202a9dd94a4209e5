"""A local Ray started by the pipeline listens on loopback only, with no dashboard, no API server, no autoscaler
monitor and no log monitor (:mod:`pipeline.raystart`), and runs tasks."""

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
found, commands = [], []
for p in [psutil.Process()] + psutil.Process().children(recursive=True):
    try:
        commands.append(" ".join(p.cmdline()))
        found += [(c.laddr.ip, p.name()) for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps({"listen": found, "commands": commands}))
"""


def test_local_ray_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OBELICS_RAY_DASHBOARD")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    found = probe["listen"]
    assert len(found) >= 3  # GCS, raylet, a worker at least
    assert {ip for ip, _ in found} <= {"127.0.0.1", "::ffff:127.0.0.1"}, found
    assert not any("dashboard" in name.lower() for _, name in found)
    # the three daemons a run never uses are not started (a task ran above without them)
    assert any("raylet" in c for c in probe["commands"]), probe["commands"]
    assert not any(name in c for c in probe["commands"]
                   for name in ("log_monitor.py", "autoscaler/_private/monitor.py", "dashboard/dashboard.py"))


def test_lean_head_sets_only_the_head_nodes_parameters():
    """The Node wrapper sets the two parameters on a head node, leaves a joining node's alone, skips the API
    server, and is removed after the block (no Ray started: the wrapped constructor is replaced by a recorder)."""
    from ray._private import node as ray_node
    from ray._private.parameter import RayParams

    from pipeline.raystart import lean_head

    seen = []
    original, api = ray_node.Node.__init__, ray_node.Node.start_api_server
    ray_node.Node.__init__ = lambda self, params, *a, **k: seen.append((params.no_monitor, params.include_log_monitor))
    ray_node.Node.start_api_server = lambda self, **k: seen.append("api server")
    try:
        with lean_head():
            ray_node.Node(RayParams(include_log_monitor=True), head=True)
            ray_node.Node(RayParams(include_log_monitor=True), head=False)
            ray_node.Node.start_api_server(None, include_dashboard=False, raise_on_failure=False)
        with lean_head(enabled=False):
            ray_node.Node(RayParams(include_log_monitor=True), head=True)
            ray_node.Node.start_api_server(None, include_dashboard=False, raise_on_failure=False)
        recorder = ray_node.Node.__init__
    finally:
        ray_node.Node.__init__, ray_node.Node.start_api_server = original, api
    assert seen == [(True, False), (False, True), (False, True), "api server"]
    assert recorder.__name__ == "<lambda>"  # the block put back what it found
