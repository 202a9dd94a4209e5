"""One writer per run folder: a lock file naming its holder (host, PID), stale locks taken over.

A second ``obelics run`` on the same ``--out`` would otherwise delete the first one's in-flight temporaries
and crash it. :func:`run_lock` creates ``OUT/.lock`` exclusively (``O_CREAT | O_EXCL``, atomic on local and
NFSv3+ file systems) holding ``{"host", "pid", "started", "boot"}``. A lock whose holder is on this host and
no longer alive (no such PID, or a PID reused by a process started after the lock) is stale: it is replaced
and the run goes on. A live holder, or one on another host (which this host cannot check), is refused with
a one-line error naming it. Once the lock is held every leftover of a killed writer is removed
(:func:`clean_leftovers`), since no one else can be writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from obelics import storage

LOCK_NAME = ".lock"
# temporaries of a killed writer: atomic writes (.NAME.<hex>.tmp), dedup work folders (.NAME-work-<hex>),
# img2dataset header logs (NNNNN.<pid>.tmp)
_TMP_FILE = re.compile(r"^\..+\.tmp$|^\d+\.\d+\.tmp$")
_WORK_DIR = re.compile(r"^\..+-work-[0-9a-f]{8}$")


class RunLocked(ValueError):
    """Another live run holds the folder (a user error: the CLI prints one line, exit code 2)."""


def _pid_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None when there is no such process."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess, AccessDenied...
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0.0
        return 0.0


def holder_alive(info: dict) -> bool:
    """Whether the process named by a lock is still running (on this host; other hosts: assumed alive)."""
    if info.get("host") != socket.gethostname():
        return True
    try:
        pid = int(info.get("pid"))
    except (TypeError, ValueError):
        return False
    started = _pid_start(pid)
    if started is None:
        return False
    # a PID reused by a process that started after the lock was taken is not the holder
    return not (started and started > float(info.get("started", 0)) + 1.0)


def _read(path: str | Path) -> dict | None:
    try:
        return json.loads(storage.read_bytes(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written or garbage: no live holder can be named


def acquire(out: str | Path) -> Path:
    """Take ``OUT/.lock`` or raise :class:`RunLocked`; a stale lock is replaced. Returns the lock path."""
    if storage.is_remote(out):
        return _acquire_remote(os.fspath(out))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(5):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read(path)
            if info is None:
                continue  # released meanwhile
            _refuse_if_held(out, path, info)
            stale = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, stale)  # one taker wins the rename
                stale.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return path
    raise RunLocked(f"{out}: could not take {path} (it keeps changing hands)")


def _refuse_if_held(out, path, info: dict) -> None:
    """Raise :class:`RunLocked` when the lock at ``path`` (holding ``info``) belongs to a live run."""
    if info and holder_alive(info):
        raise RunLocked(f"{out} is being written by another run (host {info.get('host')}, pid "
                        f"{info.get('pid')}); wait for it, or remove {path} if that run is gone")


def _acquire_remote(out: str) -> str:
    """:func:`acquire` on object storage: the lock is created by a conditional PUT (S3 has no O_EXCL);
    a stale lock is deleted, then the creation is tried again."""
    path = storage.join(out, LOCK_NAME)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    for _ in range(5):
        if storage.create_exclusive(path, json.dumps(me).encode()):
            return path
        info = _read(path)
        if info is None:
            continue  # released meanwhile
        _refuse_if_held(out, path, info)
        storage.remove(path)
    raise RunLocked(f"{out}: could not take {path} (it keeps changing hands)")


def release(out: str | Path) -> None:
    """Remove ``OUT/.lock`` if this process holds it."""
    path = storage.join(out, LOCK_NAME)
    info = _read(path)
    if info and info.get("host") == socket.gethostname() and info.get("pid") == os.getpid():
        storage.remove(path)


def clean_leftovers(out: str | Path) -> dict[str, int]:
    """Remove the temporaries a killed writer left in ``out`` (call with the lock held)."""
    counts = {"files": 0, "folders": 0}
    if storage.is_remote(out):  # object storage: dedup work prefixes (uploads never completed are no objects)
        prefix = os.fspath(out).rstrip("/") + "/"
        dead = set()
        for f in storage.walk_files(out):
            parts = f[len(prefix):].split("/")
            for i, part in enumerate(parts[:-1]):
                if _WORK_DIR.match(part):
                    dead.add(prefix + "/".join(parts[: i + 1]))
                    break
            else:
                if _TMP_FILE.match(parts[-1]) and not parts[-1].startswith(LOCK_NAME):
                    storage.remove(f)
                    counts["files"] += 1
        for d in sorted(dead):
            storage.remove_tree(d)
            counts["folders"] += 1
        return counts
    out = Path(out)
    if not out.exists():
        return counts
    for dirpath, dirnames, filenames in os.walk(out):
        for d in list(dirnames):
            if _WORK_DIR.match(d):
                shutil.rmtree(Path(dirpath) / d, ignore_errors=True)
                dirnames.remove(d)
                counts["folders"] += 1
        for name in filenames:
            if _TMP_FILE.match(name) and not name.startswith(LOCK_NAME):
                (Path(dirpath) / name).unlink(missing_ok=True)
                counts["files"] += 1
    return counts


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[dict[str, int]]:
    """Hold ``OUT/.lock`` for the block, after removing a killed writer's leftovers; yields their counts.

    A folder this call created is removed again when the block leaves it empty (a run refused before any
    work, e.g. for a bad profile, leaves nothing behind)."""
    created = not storage.is_remote(out) and not Path(out).exists()  # object stores have no folders
    acquire(out)
    try:
        yield clean_leftovers(out)
    finally:
        release(out)
        if created:
            with contextlib.suppress(OSError):
                Path(out).rmdir()  # only when empty
