"""One writer per run folder: a live holder refuses a second run, a dead one's lock and leftovers go."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from pipeline.lock import LOCK_NAME, RunLocked, acquire, holder_alive, release, run_lock


def _write_lock(out, **info):
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps(info))


def test_live_holder_refuses_a_second_writer(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        _write_lock(tmp_path, host=socket.gethostname(), pid=sleeper.pid, started=time.time())
        with pytest.raises(RunLocked, match=f"pid {sleeper.pid}"):
            acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its lock is stale and taken over
    assert acquire(tmp_path) == tmp_path / LOCK_NAME
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    release(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()


def test_other_host_is_assumed_alive_and_pid_reuse_is_stale(tmp_path):
    _write_lock(tmp_path, host="elsewhere.example", pid=1, started=time.time())
    with pytest.raises(RunLocked, match="elsewhere.example"):
        acquire(tmp_path)
    # our own PID, but "taken" before this process started: a reused PID, not the holder
    assert not holder_alive({"host": socket.gethostname(), "pid": os.getpid(), "started": 1.0})
    assert holder_alive({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})


def test_second_run_in_the_same_process_waits_for_none(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunLocked):
            acquire(tmp_path)
    with run_lock(tmp_path):
        pass


def test_leftovers_of_a_killed_writer_removed(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / ".shard-00000.tar.ab12cd34.tmp").write_bytes(b"x")
    (tmp_path / "work" / "decisions" / ".image_url-work-0123abcd").mkdir(parents=True)
    (tmp_path / "work" / "decisions" / ".image_url-work-0123abcd" / "p.parquet").write_bytes(b"x")
    (tmp_path / "work" / "img" / "_headers").mkdir(parents=True)
    (tmp_path / "work" / "img" / "_headers" / "00000.4242.tmp").write_text("")
    keep = [tmp_path / "shards" / "shard-00000.tar", tmp_path / "work" / "unit.parquet", tmp_path / "stats.json"]
    for p in keep:
        p.write_bytes(b"keep")
    with run_lock(tmp_path) as counts:
        assert counts == {"files": 2, "folders": 1}
    assert all(p.exists() for p in keep)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == sorted(["shards", "shards/shard-00000.tar", "work", "work/unit.parquet", "stats.json",
                           "work/decisions", "work/img", "work/img/_headers"])


def test_run_refused_while_another_writer_holds_the_folder(tmp_path):
    from pipeline.run import run

    with run_lock(tmp_path):
        with pytest.raises(RunLocked):
            run("default", tmp_path, [str(tmp_path / "none.warc.gz")])
    assert not (tmp_path / "run.json").exists()  # nothing written by the refused run



def test_folder_created_for_a_refused_run_is_removed(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="refused"):
        with run_lock(out):
            raise RuntimeError("refused before any work")
    assert not out.exists()
    with run_lock(out):
        (out / "stats.json").write_text("{}")
    assert (out / "stats.json").exists() and not (out / LOCK_NAME).exists()
