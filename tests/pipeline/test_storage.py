"""obelics.storage on a local folder and on the loopback S3 server: the same behaviour, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from obelics import storage
from tests.pipeline.s3_server import LoopbackS3, s3  # noqa: F401 - the fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path):
    """A writable folder: a local one, or a prefix of a bucket on the loopback S3 server."""
    if request.param == "local":
        yield str(tmp_path / "root")
        return
    with LoopbackS3() as server:
        yield server.make_bucket("bucket") + "/root"


def test_uri_helpers():
    assert storage.join("s3://b/x/", "work", "a.json") == "s3://b/x/work/a.json"
    assert storage.join("out", "work") == os.path.join("out", "work")
    assert storage.is_remote("s3://b/x") and storage.is_remote("gs://b") and storage.is_remote("memory://x")
    assert not storage.is_remote("/tmp/x") and not storage.is_remote("file:///tmp/x") and not storage.is_remote("x")
    assert storage.parent("s3://b/x/y.json") == "s3://b/x" and storage.basename("s3://b/x/y.json") == "y.json"


def test_write_read_list_remove(base):
    assert not storage.exists(storage.join(base, "a.json"))
    assert storage.listdir(base) == []
    storage.write_json_atomic(storage.join(base, "a.json"), {"x": 1})
    storage.write_bytes_atomic(storage.join(base, "sub", "b.bin"), bytes(range(256)) * 4)
    assert storage.read_json(storage.join(base, "a.json")) == {"x": 1}
    assert storage.exists(storage.join(base, "a.json")) and storage.isdir(storage.join(base, "sub"))
    assert storage.listdir(base) == ["a.json", "sub"]
    assert storage.read_bytes(storage.join(base, "sub", "b.bin"), start=300, length=5) == bytes([44, 45, 46, 47, 48])
    assert storage.size(storage.join(base, "sub", "b.bin")) == 1024
    with storage.open_input(storage.join(base, "sub", "b.bin")) as f:
        f.seek(1020)
        assert f.read() == bytes([252, 253, 254, 255])
    files = storage.walk_files(base)
    assert [storage.basename(f) for f in files] == ["a.json", "b.bin"]
    assert storage.read_bytes(files[1])[:3] == b"\x00\x01\x02"
    storage.remove(storage.join(base, "a.json"))
    storage.remove(storage.join(base, "a.json"))  # missing is fine
    assert storage.listdir(base) == ["sub"]
    storage.remove_tree(base)
    assert storage.listdir(base) == [] and not storage.exists(storage.join(base, "sub", "b.bin"))


def test_parquet_round_trip(base):
    table = pa.table({"url": ["a", "b"], "n": [1, 2]})
    loc = storage.join(base, "t.parquet")
    storage.write_parquet_atomic(loc, table, compression="zstd")
    assert storage.read_parquet(loc).equals(table)
    assert storage.read_parquet(loc, columns=["n"]).column("n").to_pylist() == [1, 2]
    assert storage.parquet_file(loc).metadata.num_rows == 2


def test_failed_write_leaves_nothing(base):
    loc = storage.join(base, "big.bin")
    with pytest.raises(RuntimeError, match="boom"):
        with storage.atomic_writer(loc, block_size=5 * 2**20) as f:
            f.write(os.urandom(6 * 2**20))  # remotely: one part of a multipart upload is sent
            f.flush()
            raise RuntimeError("boom")
    assert not storage.exists(loc)
    assert [n for n in storage.listdir(base)] == []
    storage.write_bytes_atomic(loc, b"done")
    with pytest.raises(RuntimeError):
        with storage.atomic_writer(loc) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert storage.read_bytes(loc) == b"done"  # the earlier complete version is untouched


def test_failed_multipart_upload_is_aborted(s3):  # noqa: F811
    loc = s3.make_bucket("bkt") + "/x.bin"
    with pytest.raises(RuntimeError):
        with storage.atomic_writer(loc, block_size=5 * 2**20) as f:
            f.write(os.urandom(11 * 2**20))
            f.flush()
            raise RuntimeError("boom")
    assert s3.keys("bkt") == [] and s3.open_uploads("bkt") == []


def test_killed_writer_leaves_no_object(s3):  # noqa: F811
    """A process killed in the middle of an upload (parts sent, never completed) leaves no object."""
    bucket = s3.make_bucket("bkt")
    code = textwrap.dedent(f"""
        import os, signal, sys
        from obelics import storage
        with storage.atomic_writer({bucket + '/killed.bin'!r}, block_size=5 * 2**20) as f:
            f.write(os.urandom(11 * 2**20))
            f.flush()
            print("parts sent", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "parts sent" in proc.stdout
    assert s3.open_uploads("bkt") == ["killed.bin"]  # the upload was under way...
    assert s3.keys("bkt") == []  # ...and nothing reads as written
    assert not storage.exists(bucket + "/killed.bin")


def test_storage_options_follow_the_aws_variables(s3):  # noqa: F811
    opts = storage.storage_options("s3://b/x")
    assert opts["client_kwargs"]["endpoint_url"] == s3.endpoint
    assert storage.storage_options("/tmp/x") == {}


def test_exclusive_creation_and_the_run_lock_on_s3(s3):  # noqa: F811
    from pipeline.lock import RunLocked, acquire, clean_leftovers, release

    out = s3.make_bucket("bkt") + "/run"
    assert storage.create_exclusive(out + "/x", b"1") and not storage.create_exclusive(out + "/x", b"2")
    assert storage.read_bytes(out + "/x") == b"1"
    acquire(out)
    with pytest.raises(RunLocked, match="another run"):
        acquire(out)  # held by this live process
    release(out)
    assert not storage.exists(out + "/.lock")
    # a lock left by a dead process on this host is taken over; a killed dedup pass's work prefix removed
    import socket

    storage.write_json_atomic(out + "/.lock", {"host": socket.gethostname(), "pid": 2**22 + 12345, "started": 0})
    storage.write_bytes_atomic(out + "/work/03-dedup/.url-work-0123abcd/map-00000.arrow", b"x")
    storage.write_bytes_atomic(out + "/work/03-dedup/decision.json", b"{}")
    acquire(out)
    assert clean_leftovers(out) == {"files": 0, "folders": 1}
    assert storage.listdir(out + "/work/03-dedup") == ["decision.json"]
    release(out)
