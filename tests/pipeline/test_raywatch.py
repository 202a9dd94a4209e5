"""The local Ray's processes end with the driver, SIGKILL included (pipeline.raywatch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import ROOT
from tests.pipeline.test_run import OFFLINE, sample_warc

# A driver that starts the watchdog, then an orphan (a child of a shell that exits at once, as Ray's
# agents become when the raylet dies) and a child in a session of its own.
DRIVER = r"""
import os, subprocess, sys, time
from pipeline.raywatch import start_watchdog
start_watchdog()
subprocess.Popen(["sh", "-c", "sleep 300 & echo $!"], stdout=open(sys.argv[1], "w")).wait()
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print("ready", flush=True)
time.sleep(300)
"""


def _tree(proc: psutil.Process) -> dict[int, float]:
    out = {}
    for c in proc.children(recursive=True):
        try:
            out[c.pid] = c.create_time()
        except psutil.Error:
            pass
    return out


def _alive(noted: dict[int, float]) -> list[int]:
    alive = []
    for pid, created in noted.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            pass
    return alive


def _gone_within(noted: dict[int, float], seconds: float) -> list[int]:
    """Poll until none of ``noted`` runs (or ``seconds`` pass); the ones still running."""
    deadline = time.monotonic() + seconds
    while (alive := _alive(noted)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_watchdog_kills_the_drivers_processes_orphans_included_not_strangers(tmp_path):
    stranger = subprocess.Popen(["sleep", "300"])  # ours, not the driver's: must survive
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    drv = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "orphan.pid")], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    noted: dict[int, float] = {}
    try:
        assert drv.stdout.readline().strip() == "ready"
        orphan = int((tmp_path / "orphan.pid").read_text())
        assert psutil.Process(orphan).ppid() != drv.pid  # reparented: not under the driver any more
        noted = {orphan: psutil.Process(orphan).create_time(), **_tree(psutil.Process(drv.pid))}
        assert len(noted) >= 3  # the orphan, the watchdog, the other child
        time.sleep(1.5)  # let the watchdog take one look at the tree
        os.kill(drv.pid, signal.SIGKILL)
        drv.wait()
        assert _gone_within(noted, 15) == []
        assert stranger.poll() is None
    finally:
        _kill(_alive(noted))
        stranger.kill()
        stranger.wait()
        if drv.poll() is None:
            drv.kill()
            drv.wait()


@pytest.mark.slow  # a real run on local Ray, about half a minute on a busy machine
def test_local_ray_ends_when_the_driver_is_killed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OBELICS_RAY_DASHBOARD")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    args = [a for s in OFFLINE for a in ("--set", s)]
    drv = subprocess.Popen([sys.executable, "-m", "obelics", "run", "--warc", str(sample_warc()),
                            "--out", str(tmp_path / "out"), *args], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    noted: dict[int, float] = {}
    try:
        driver = psutil.Process(drv.pid)
        deadline = time.monotonic() + 300
        # wait for Ray's helper processes and a worker (they are what outlived the driver before)
        while drv.poll() is None and time.monotonic() < deadline:
            noted.update(_tree(driver))
            names = set()
            for pid in noted:
                try:
                    names.add(psutil.Process(pid).name())
                except psutil.Error:
                    pass
            if {"raylet", "gcs_server"} <= names and any(n.startswith("ray::") for n in names):
                break
            time.sleep(0.2)
        assert drv.poll() is None, "the run ended before Ray's processes were seen"
        time.sleep(1.5)
        noted.update(_tree(driver))
        os.kill(drv.pid, signal.SIGKILL)  # the driver only, as the OOM killer would
        drv.wait()
        assert _gone_within(noted, 20) == []
    finally:
        _kill(_alive(noted))
        if drv.poll() is None:
            drv.kill()
            drv.wait()
