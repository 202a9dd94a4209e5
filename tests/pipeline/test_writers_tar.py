"""The hand-made tar headers (``pipeline/writers/tar.py``) against ``tarfile``'s, byte for byte."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pyarrow as pa
import pytest

from pipeline.writers.tar import MTIME, TarMembers

NAMES = ["0123abcd.images.mp", "0123abcd.json", "x", "a" * 100,  # ustar names
         "b" * 101, "doc-é.json", "doc-\udcff.json"]             # too long, not ASCII, surrogate: pax via tarfile
SIZES = [0, 1, 511, 512, 513, 1024, 70_001]


def tarfile_bytes(members, mtime=MTIME) -> bytes:
    """What tarfile writes for these members with webdataset.TarWriter's fields (mode 0o444, owner bigdata)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), mtime, 0o444, "bigdata", "bigdata"
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def ours(members, **kw) -> bytes:
    buf = io.BytesIO()
    t = TarMembers(buf, **kw)
    for name, data in members:
        t.add(name, data)
    t.close()
    return buf.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_header_equals_tarfile(name):
    t = TarMembers(io.BytesIO())
    for size in SIZES + [8 ** 11 - 1, 8 ** 11]:  # the largest ustar size, then one that needs pax
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, MTIME, 0o444, "bigdata", "bigdata"
        assert t.header(name, size) == ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), (name, size)


@pytest.mark.parametrize("count", [0, 1, 2, 19, 20, 21, 45])
def test_archive_equals_tarfile(count):
    members = [(NAMES[i % len(NAMES)], bytes([i % 251]) * SIZES[i % len(SIZES)]) for i in range(count)]
    got = ours(members)
    assert got == tarfile_bytes(members)
    assert len(got) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(got)) as tf:
        read = [(m.name, tf.extractfile(m).read(), m.mtime) for m in tf.getmembers()]
    assert read == [(n, d, MTIME) for n, d in members]


def test_other_fields_equal_tarfile():
    members = [("k.json", b"{}"), ("k.images.mp", b"\x90" * 600)]
    assert ours(members, mode=0o644, user="u", group="g", mtime=1_700_000_000) == tarfile_bytes_fields(members)


def tarfile_bytes_fields(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), 1_700_000_000, 0o644, "u", "g"
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def rows(n: int) -> pa.Table:
    return pa.Table.from_pylist([
        {"doc_id": f"{i:016x}", "texts": ["a text", None], "images": [None, f"http://x/{i}.jpg"],
         "metadata": json.dumps([None, {"src": f"http://x/{i}.jpg"}]), "general_metadata": json.dumps({"url": "u"}),
         "image_bytes": [None, bytes([i]) * (100 + 37 * i)]} for i in range(n)])


def test_shards_are_reproducible_and_as_webdataset_writes_them(tmp_path):
    """The same documents give the same tar bytes at another time (the members' mtime is fixed), and those bytes
    are webdataset.TarWriter's with that mtime."""
    import webdataset as wds

    from pipeline.writers.webdataset import document_sample, write_webdataset

    table = rows(7)
    write_webdataset(table, tmp_path / "a", max_count=4)
    time.sleep(1.1)
    write_webdataset(table, tmp_path / "b", max_count=4)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert names == ["shard-00000.tar", "shard-00001.tar"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    buf = io.BytesIO()
    w = wds.TarWriter(buf, mtime=MTIME)
    for row in table.slice(0, 4).to_pylist():
        w.write(document_sample(row))
    w.tarstream.close()  # TarWriter.close would close the BytesIO too
    assert (tmp_path / "a" / "shard-00000.tar").read_bytes() == buf.getvalue()


def test_writing_tars_imports_neither_webdataset_nor_torch(tmp_path):
    """The tars are written without webdataset (which imports torch, seconds): the output step needs neither."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, pyarrow as pa, json\n"
            "from pipeline.writers.webdataset import write_webdataset\n"
            "t = pa.Table.from_pylist([{'doc_id': 'ab', 'texts': ['t', None], 'images': [None, 'http://x/a.jpg'], "
            "'metadata': '[null, {}]', 'general_metadata': '{}', 'image_bytes': [None, b'jpg']}])\n"
            f"print(len(write_webdataset(t, {str(tmp_path)!r})), 'webdataset' in sys.modules, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False", "False"]
