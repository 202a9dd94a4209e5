"""The local Ray instance ends with the driver that started it, however the driver ends (SIGKILL too).

Ray starts its head processes (GCS, raylet, log monitor...) with ``PR_SET_PDEATHSIG``, so they die with the
driver, but the raylet's own children (the dashboard and runtime-env agents, idle workers) are orphaned and
linger for a minute or more. Ray has no option for this, so a small watchdog process does it:
:func:`start_watchdog` (called by ``ensure_ray`` right after it starts a local instance) spawns
``python -m pipeline.raywatch``, which

- notes every descendant of the driver (pid and start time) once a second while the driver lives;
- when the driver is gone (the pipe it holds open reaches end of file, or it is no longer running),
  SIGKILLs every noted process still running, their current descendants, and any process whose
  environment carries this driver's token (a worker started since the last look), then exits.

It never touches a process it did not see under the driver or that lacks the token, so other runs and
other Ray instances on the machine are left alone. A Ray cluster joined through ``RAY_ADDRESS`` is not ours
and is not watched.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import uuid
from pathlib import Path

ENV_TOKEN = "OBELICS_RAY_OWNER"  # set in the driver before Ray starts: every process Ray starts inherits it
LOOK_EVERY_S = 1.0  # how often the watchdog notes the driver's descendants

_started: subprocess.Popen | None = None
_keep_open: list[int] = []  # the pipe's write end, open as long as this process lives


def start_watchdog() -> subprocess.Popen | None:
    """Spawn the watchdog for this process (once); sets :data:`ENV_TOKEN` in ``os.environ``, so call it
    before the local Ray starts. Returns the watchdog's process, or None where it cannot run (no ``/proc``)."""
    global _started
    if _started is not None and _started.poll() is None:
        return _started
    if not Path("/proc/self").exists():
        return None
    # a fresh token: one inherited from a parent driver names the parent's processes, not ours
    token = os.environ[ENV_TOKEN] = f"{os.getpid()}-{uuid.uuid4().hex}"
    read_end, write_end = os.pipe()  # the driver holds write_end (never inherited) until it dies
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    env.pop(ENV_TOKEN)  # the watchdog must not match its own token
    _started = subprocess.Popen(
        [sys.executable, "-m", "pipeline.raywatch", str(os.getpid()), token, str(read_end)],
        pass_fds=(read_end,), env=env, start_new_session=True,  # a Ctrl-C to the run's group is not for it
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(read_end)
    _keep_open.append(write_end)
    return _started


def _has_token(proc, token: str) -> bool:
    import psutil

    try:
        return proc.environ().get(ENV_TOKEN) == token
    except (psutil.Error, OSError):
        return False


def _kill_all(noted: dict, token: str) -> int:
    """SIGKILL the noted processes still running (same pid and start time), their descendants, and every
    process carrying ``token``; returns how many were signalled."""
    import psutil

    me = os.getpid()
    victims: dict[int, psutil.Process] = {}
    for pid, created in noted.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() != created:
                continue
            victims[pid] = p
            for c in p.children(recursive=True):
                victims[c.pid] = c
        except psutil.Error:
            continue
    for p in psutil.process_iter():
        if p.pid != me and p.pid not in victims and _has_token(p, token):
            victims[p.pid] = p
    victims.pop(me, None)  # the watchdog is a child of the driver too
    for p in victims.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(victims)


def watch(driver_pid: int, token: str, read_fd: int) -> int:
    """The watchdog's loop (see the module docstring); returns how many processes it killed at the end."""
    import psutil

    try:
        driver = psutil.Process(driver_pid)
        driver_created = driver.create_time()
    except psutil.Error:
        return 0
    noted: dict[int, float] = {}
    while True:
        try:
            if driver.create_time() != driver_created or driver.status() == psutil.STATUS_ZOMBIE:
                break
            for c in driver.children(recursive=True):
                try:
                    noted[c.pid] = c.create_time()
                except psutil.Error:
                    pass
        except psutil.Error:
            break
        ready, _, _ = select.select([read_fd], [], [], LOOK_EVERY_S)
        if ready and not os.read(read_fd, 1):  # end of file: the driver's last copy of the pipe closed
            break
    return _kill_all(noted, token)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver's end decides, not a terminal's Ctrl-C
    driver_pid, token, read_fd = int(argv[0]), argv[1], int(argv[2])
    watch(driver_pid, token, read_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
