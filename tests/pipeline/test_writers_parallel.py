"""The output step spread over tasks (``pipeline.writers.parallel``) writes what the sequential path writes:
the same Parquet bytes, the same tar bytes (members carry a fixed mtime: pipeline/writers/tar.py),
the same stats, counts and distributions, for shards and tars that cut documents and units anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.add_output_format.jsonl_writer import JsonlWriter
from obelics.document import DOCUMENT_SCHEMA, WebDocument, documents_to_table
from pipeline.finish import write_sequentially
from pipeline.images.config import ImagesConfig
from pipeline.images.loopback import skimage_photos
from pipeline.images.merge import fill_image_bytes, merge_table
from pipeline.images.table import ImageTable, make_row, rows_to_table
from pipeline.report.funnel import Reservoir
from pipeline.writers.config import OutputConfig
from pipeline.writers.parallel import pieces_of, read_pieces, write_dataset
from pipeline.writers.webdataset import RollingPlan, image_lengths, packed_list_size
from tests.conftest import ROOT
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture

STAGE = "09-final"
PHOTOS = skimage_photos(("astronaut.png", "rocket.jpg", "horse.png", "no_time_for_that_tiny.gif"))
JSONL = "examples.add_output_format.jsonl_writer:JsonlWriter"
SEQUENTIAL_JSONL = "tests.pipeline.test_writers_parallel:SequentialJsonl"
DISTS = ("images_per_document", "words_per_document")


def _documents(n: int) -> list[WebDocument]:
    names = sorted(PHOTOS)
    docs = []
    for k in range(n):
        texts, images, meta = [f"Paragraph {k} — with {'a few ' * (k % 7)}words, é ü."], [None], [None]
        for j in range(k % 4):
            u = f"http://img/{names[(k + j) % len(names)]}" if (k + j) % 5 else f"http://img/missing-{k}"
            if k % 11 == 3 and j == 0:
                u = "http://img/failed"
            texts += [None, "More words." * (1 + j)]
            images += [u, None]
            meta += [{"src": u}, None]
        docs.append(WebDocument(texts=texts, images=images, metadata=meta,
                                general_metadata={"url": f"http://site/{k}", "warc_filename": "f.warc.gz",
                                                  "warc_record_offset": k, "warc_record_length": 1,
                                                  "http_headers": {"x": "private"}}))
    return docs


def make_work(root: Path, sizes: list[int], row_group: int = 3) -> tuple[str, list[str], str]:
    """A run's final stage (units of ``sizes`` documents, small row groups) and its image table."""
    cfg = ImagesConfig()
    rows = [make_row(f"http://img/{n}", PHOTOS[n], cfg) for n in PHOTOS]
    rows.append(make_row("http://img/failed", None, cfg, error="HTTP Error 404: Not Found"))
    lookup = {r["url"]: r for r in rows}
    table = ImageTable(root / "images")
    table.write_part("p", rows_to_table(rows))
    merged = merge_table(documents_to_table(_documents(sum(sizes))), lookup, with_bytes=False)
    merged = merged.select(DOCUMENT_SCHEMA.names)
    if sizes and sum(sizes) > 5:  # one image whose bytes no longer match its node: no bytes in the tar
        meta = [json.loads(m) for m in merged["metadata"].to_pylist()]
        k = next(i for i, m in enumerate(meta) if any(x and x.get("sha256") for x in m))
        pos = next(p for p, x in enumerate(meta[k]) if x and x.get("sha256"))
        meta[k][pos]["sha256"] = "0" * 64
        merged = merged.set_column(merged.schema.get_field_index("metadata"), "metadata",
                                   pa.array([json.dumps(m) for m in meta], pa.string()))
    (root / "work" / STAGE).mkdir(parents=True)
    units, start = [], 0
    for i, n in enumerate(sizes):
        units.append(f"u{i:03d}")
        pq.write_table(merged.slice(start, n), root / "work" / STAGE / f"{units[-1]}.parquet", row_group_size=row_group)
        start += n
    return str(root / "work"), units, str(root / "images")


def sequential(work, units, dest, cfg, per, images_dir):
    """The output step as it was: every shard through the driver, counted as it passes."""
    dists = {k: Reservoir() for k in DISTS}
    outputs, flow, _ = write_sequentially(work, STAGE, units, dest, cfg, per, images_dir, dists)
    return outputs, flow, {k: r.values for k, r in dists.items()}


def spread(work, units, dest, cfg, per, images_dir, use_ray=False):
    dists = {k: Reservoir() for k in DISTS}
    w = write_dataset(work, STAGE, units, dest, cfg, per, images_dir, use_ray, dists)
    return w.outputs, w.flow, {k: r.values for k, r in dists.items()}


def files(dest) -> dict[str, bytes]:
    """Every file of an output folder, byte for byte, local or ``s3://``."""
    from obelics import storage

    got = {}
    for sub in ("parquet", "webdataset", "jsonl"):
        folder = storage.join(str(dest), sub)
        if not storage.exists(folder):
            continue
        for name in sorted(storage.listdir(folder)):
            got[f"{sub}/{name}"] = storage.read_bytes(storage.join(folder, name))
    return got


def assert_same(a: tuple, b: tuple, dest_a, dest_b) -> None:
    assert a[0] == b[0]  # every file's stats, writer by writer, in order
    assert a[1] == b[1] and a[2] == b[2]  # flow counts, distributions
    fa, fb = files(dest_a), files(dest_b)
    assert sorted(fa) == sorted(fb) and fa == fb


SETTINGS = [  # (unit sizes, documents per shard, tar max_count, tar max_bytes in documents' sizes or bytes)
    ([5, 0, 8, 1, 9, 4], 4, 3, 10**9),        # tars roll by count, across shards and units
    ([5, 0, 8, 1, 9, 4], 7, 100, 3.5),        # by bytes, mid-shard (about 3.5 documents a tar)
    ([5, 0, 8, 1, 9, 4], 1, 2, 1.5),          # one document a shard; count and bytes both cutting
    ([12, 3, 11], 5, 10000, 1),               # every document alone in its tar (max_bytes=1 byte)
    ([6, 6], 100, 4, 10**9),                  # one shard, three tars
    ([0, 0], 4, 3, 10**9),                    # no documents: one empty Parquet shard, no tar
]


@pytest.mark.parametrize("sizes,per,max_count,max_bytes", SETTINGS)
def test_spread_output_equals_the_sequential_path(tmp_path, sizes, per, max_count, max_bytes):
    work, units, images = make_work(tmp_path, sizes)
    if max_bytes not in (1, 10**9):  # in documents: a tar of about that many average documents
        from pipeline.writers.webdataset import WebDatasetShardWriter

        all_rows = read_pieces(pieces_of([(os.path.join(work, STAGE, f"{u}.parquet"), n)
                                          for u, n in zip(units, sizes)], 0, sum(sizes)))
        measured = WebDatasetShardWriter(OutputConfig()).measure(all_rows, ImageTable(images))
        max_bytes = int(max_bytes * sum(measured) / len(measured))
    cfg = OutputConfig(formats=["parquet", "webdataset", JSONL], webdataset_max_count=max_count,
                       webdataset_max_bytes=int(max_bytes))
    want = sequential(work, units, str(tmp_path / "seq"), cfg, per, images)
    got = spread(work, units, str(tmp_path / "par"), cfg, per, images)
    assert_same(got, want, tmp_path / "par", tmp_path / "seq")
    n_tars = sum(1 for o in want[0] if o["format"] == "webdataset")
    assert (n_tars >= 2) == bool(sum(sizes))  # the settings do cut tars (none without documents)


def test_embedded_images_and_a_sequential_writer_of_ones_own(tmp_path):
    """Parquet with image bytes (filled in the tasks) and a plugin writer without ``mode`` (sequential, in
    the driver) beside the spread ones: the same files, in the formats' order."""
    work, units, images = make_work(tmp_path, [4, 7, 2, 6])
    cfg = OutputConfig(formats=["webdataset", SEQUENTIAL_JSONL, "parquet"], embed_images=True,
                       webdataset_max_count=5)
    want = sequential(work, units, str(tmp_path / "seq"), cfg, 3, images)
    got = spread(work, units, str(tmp_path / "par"), cfg, 3, images)
    assert_same(got, want, tmp_path / "par", tmp_path / "seq")
    assert [o["format"] for o in got[0]][:4] == ["webdataset"] * 4 and got[0][-1]["format"] == "parquet"
    assert any(o.get("images_with_bytes") for o in got[0])
    # the example's shard-by-shard files equal what its sequential twin wrote in the driver
    cfg_jsonl = OutputConfig(formats=[JSONL])
    spread(work, units, str(tmp_path / "ex"), cfg_jsonl, 3, images)
    assert files(tmp_path / "ex") == {k: v for k, v in files(tmp_path / "par").items() if k.startswith("jsonl/")}


def test_a_tars_task_makes_its_documents_rows_once(tmp_path, monkeypatch):
    """The tar's task fills the image bytes into the rows it writes (``fill_rows``), without building a table of
    them that the writer turns back into rows (``fill_image_bytes``: ~0.1 ms a document); the same tars."""
    import pipeline.images.merge as merge

    work, units, images = make_work(tmp_path, [5, 0, 8, 1, 9, 4])
    cfg = OutputConfig(formats=["parquet", "webdataset"], webdataset_max_count=3)
    want = sequential(work, units, str(tmp_path / "seq"), cfg, 4, images)
    monkeypatch.setattr(merge, "fill_image_bytes", lambda *a: pytest.fail("a table filled and read back"))
    got = spread(work, units, str(tmp_path / "par"), cfg, 4, images)
    assert_same(got, want, tmp_path / "par", tmp_path / "seq")
    assert sum(o.get("images", 0) for o in got[0] if o["format"] == "webdataset") > 0  # bytes were filled


class SequentialJsonl(JsonlWriter):
    """The example with the default mode: the driver streams every shard through open/write/close."""

    mode = "sequential"


def test_tar_sizes_are_measured_without_the_image_bytes(tmp_path):
    """The tasks size a document's tar members from the image table's lengths: equal to the real packing."""
    for lengths in ([], [None], [0, 255, 256, 65535, 65536, None], [1] * 15, [1] * 16, [None] * 70000):
        assert packed_list_size(lengths) == len(msgpack.packb([b"x" * n if n is not None else None
                                                                for n in lengths], use_bin_type=True))
    work, units, images = make_work(tmp_path, [13])
    part = read_pieces(pieces_of([(os.path.join(work, STAGE, "u000.parquet"), 13)], 0, 13))
    filled = fill_image_bytes(part, ImageTable(images))
    want = [[None if b is None else len(b) for b in r] for r in filled["image_bytes"].to_pylist()]
    assert image_lengths(part, ImageTable(images)) == want
    assert any(x is None for r, u in zip(want, part["images"].to_pylist()) for x, url in zip(r, u) if url)


def test_rolling_plan_follows_the_writers_rule():
    plan = RollingPlan(max_count=3, max_bytes=10)
    assert plan.add([4, 4]) == [] and plan.add([4, 1, 20, 2]) == [(0, 2, 8), (2, 4, 5), (4, 5, 20)]
    assert plan.finish() == [(5, 6, 2)] and RollingPlan(3, 10).finish() == []


def test_pieces_cover_shards_across_units():
    counts = [("a", 5), ("b", 0), ("c", 8), ("d", 1)]
    got = [[(p.path, p.start, p.stop) for p in pieces_of(counts, k, min(14, k + 4))] for k in range(0, 14, 4)]
    assert got == [[("a", 0, 4)], [("a", 4, 5), ("c", 0, 3)], [("c", 3, 7)], [("c", 7, 8), ("d", 0, 1)]]


def test_footers_are_read_in_chunks_of_units_in_unit_order(tmp_path, monkeypatch):
    """The units' counts read by several tasks (2 units each, a missing unit among them) equal one pass."""
    import pipeline.writers.parallel as parallel

    work, units, _ = make_work(tmp_path, [5, 0, 8, 1, 9])
    units = units[:2] + ["missing"] + units[2:]
    whole = parallel.unit_counts(work, STAGE, units)
    monkeypatch.setattr(parallel, "FOOTERS_PER_TASK", 2)
    assert parallel.unit_counts(work, STAGE, units) == whole
    assert [n for _, n in whole] == [5, 0, 8, 1, 9]


def test_on_ray(tmp_path, monkeypatch):
    """The same functions as Ray tasks (two CPUs, more tasks than CPUs, the footers read by several): the same
    output."""
    ray = pytest.importorskip("ray")
    import pipeline.writers.parallel as parallel
    from pipeline.executor import ensure_ray

    monkeypatch.setattr(parallel, "FOOTERS_PER_TASK", 2)

    work, units, images = make_work(tmp_path, [5, 0, 8, 1, 9, 4])
    cfg = OutputConfig(formats=["parquet", "webdataset"], webdataset_max_count=3)
    want = sequential(work, units, str(tmp_path / "seq"), cfg, 4, images)
    ensure_ray(num_cpus=2)
    try:
        got = spread(work, units, str(tmp_path / "par"), cfg, 4, images, use_ray=True)
    finally:
        ray.shutdown()
    assert_same(got, want, tmp_path / "par", tmp_path / "seq")


KILL = """
import os, sys
sys.path.insert(0, {root!r})
import pipeline.writers.webdataset as w
from tests.pipeline.test_writers_parallel import spread
real = w.WebDatasetWriter.write_row
def write_row(self, row):  # the process dies in the middle of the third tar, after Parquet was written
    real(self, row)
    if self.index == 2 and self._stats["documents"] == 2:
        self._file.file.flush()
        os._exit(9)
w.WebDatasetWriter.write_row = write_row
from pipeline.writers.config import OutputConfig
spread({work!r}, {units!r}, {dest!r}, OutputConfig(webdataset_max_count=3), 4, {images!r})
"""


def test_a_killed_output_step_leaves_no_file_that_reads_as_done_and_reruns_identically(tmp_path):
    work, units, images = make_work(tmp_path, [5, 0, 8, 1, 9, 4])
    dest = str(tmp_path / "out")
    code = KILL.format(root=str(ROOT), work=work, units=units, dest=dest, images=images)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    wds = sorted(p.name for p in (tmp_path / "out" / "webdataset").iterdir())
    done = [n for n in wds if not n.startswith(".")]
    # the two tars before are complete with their stats; the one killed is only a temporary
    assert done == ["shard-00000.stats.json", "shard-00000.tar", "shard-00001.stats.json", "shard-00001.tar"]
    assert [n for n in wds if n.startswith(".")] and all(n.startswith(".shard-00002.tar.") for n in wds if n[0] == ".")
    for name in ("shard-00000.tar", "shard-00001.tar"):
        assert len(tarfile.open(tmp_path / "out" / "webdataset" / name).getmembers()) == 6
    assert len(list((tmp_path / "out" / "parquet").glob("*.parquet"))) == 7
    from pipeline.markers import clean_temporaries

    clean_temporaries(dest)  # what the run lock does to a killed run's folder
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()}
    cfg = OutputConfig(webdataset_max_count=3)
    got = spread(work, units, dest, cfg, 4, images)
    want = sequential(work, units, str(tmp_path / "fresh"), cfg, 4, images)
    assert_same(got, want, dest, tmp_path / "fresh")
    assert not [p for p in (tmp_path / "out").rglob(".*")]
    # the rerun kept what the killed run had finished (7 Parquet shards, 2 tars, their stats): not written again
    assert len(finished) == 18 and all(p.stat().st_mtime_ns == t for p, t in finished.items())


def test_a_failing_task_fails_the_step_and_leaves_its_file_unwritten(tmp_path, monkeypatch):
    import pipeline.writers.parquet_hub as ph

    work, units, images = make_work(tmp_path, [5, 8, 4])
    real = ph.hub_table
    calls = [0]

    def failing(table, embed=False):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError("disk full")
        return real(table, embed)

    monkeypatch.setattr(ph, "hub_table", failing)
    with pytest.raises(OSError, match="disk full"):
        spread(work, units, str(tmp_path / "out"), OutputConfig(), 4, images)
    names = sorted(p.name for p in (tmp_path / "out" / "parquet").iterdir())
    assert names == ["train-00000-of-00005.parquet", "train-00000-of-00005.stats.json"]


def test_work_and_output_on_object_storage(s3, tmp_path):  # noqa: F811 - the fixture
    """Units, image table and dataset on the loopback S3 server: the files equal the local ones."""
    work, units, images = make_work(tmp_path / "local", [5, 0, 8, 1, 9, 4])
    bucket = s3.make_bucket("writers")
    s3.upload_tree(tmp_path / "local", "writers", "run/")
    cfg = OutputConfig(formats=["parquet", "webdataset", JSONL], webdataset_max_count=3)
    want = sequential(work, units, str(tmp_path / "seq"), cfg, 4, images)
    got = spread(f"{bucket}/run/work", units, f"{bucket}/out", cfg, 4, f"{bucket}/run/images")
    assert_same(got, want, f"{bucket}/out", tmp_path / "seq")
    assert not s3.open_uploads("writers")
    keys = s3.keys("writers", "out/")
    assert "out/parquet/train-00006-of-00007.parquet" in keys and "out/webdataset/shard-00008.tar" in keys
    # the receipts are objects too (the plan, 7 shards, 9 tars); a tar gone from the bucket is the only file
    # a rerun writes
    receipts = s3.keys("writers", "run/work/.output/")
    assert len(receipts) == 1 + 7 + 9 and "run/work/.output/plan.json" in receipts
    s3.client.delete_object(Bucket="writers", Key="out/webdataset/shard-00004.tar")
    import pipeline.writers.parquet_hub as ph
    from pipeline.writers.webdataset import WebDatasetShardWriter

    with pytest.MonkeyPatch.context() as m:
        shards = Counted(m, ph, "write_parquet_shard")
        tars = Counted(m, WebDatasetShardWriter, "write_span_rows")
        again = spread(f"{bucket}/run/work", units, f"{bucket}/out", cfg, 4, f"{bucket}/run/images")
    assert (len(shards.calls), [c[3] for c in tars.calls]) == (0, [4])
    assert_same(again, want, f"{bucket}/out", tmp_path / "seq")


class Counted:
    """Counts the calls of a module function (patched in place), optionally failing on one of them."""

    def __init__(self, monkeypatch, module, name, fail=None):
        self.calls, real = [], getattr(module, name)

        def wrapped(*args, **kwargs):
            self.calls.append(args)
            if fail is not None and fail(*args):
                raise OSError("killed here")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)


def test_a_rerun_skips_the_shards_and_tars_an_interrupted_step_finished(tmp_path, monkeypatch):
    """A step that fails after k of n shards (then after j of m tars) is rerun: only the n-k shards (then the
    m-j tars) are written again, the tasks found done read no document, and the output, stats, counts and
    distributions equal an uninterrupted run's; another plan, or a finished file gone, is redone."""
    import pipeline.writers.parallel as parallel
    import pipeline.writers.parquet_hub as ph
    from pipeline.writers.webdataset import WebDatasetShardWriter

    work, units, images = make_work(tmp_path, [5, 0, 8, 1, 9, 4])  # 27 documents: 7 shards of 4, 9 tars of 3
    cfg = OutputConfig(formats=["parquet", "webdataset", JSONL], webdataset_max_count=3)
    dest = str(tmp_path / "out")
    want = sequential(work, units, str(tmp_path / "seq"), cfg, 4, images)

    def attempt(fail_shard=None, fail_tar=None):
        with monkeypatch.context() as m:
            shards = Counted(m, ph, "write_parquet_shard",
                             lambda t, path, *a: fail_shard is not None and f"train-{fail_shard:05d}-" in str(path))
            tars = Counted(m, WebDatasetShardWriter, "write_span_rows", lambda self, d, p, i, s: i == fail_tar)
            reads = Counted(m, parallel, "read_pieces")
            try:
                return spread(work, units, dest, cfg, 4, images), len(shards.calls), len(tars.calls), len(reads.calls)
            except OSError as e:
                assert "killed here" in str(e)
                return None, len(shards.calls), len(tars.calls), len(reads.calls)

    receipts = Path(work) / ".output"
    got, n_shards, n_tars, _ = attempt(fail_shard=4)  # shards 0-3 done, the fifth fails: no tar yet
    assert (got, n_shards, n_tars) == (None, 5, 0)
    assert sorted(p.name for p in receipts.iterdir()) == ["plan.json"] + [f"shard-{k:05d}.json" for k in range(4)]
    got, n_shards, n_tars, reads = attempt(fail_tar=5)  # shards 4-6 written; tars 0-4 done, the sixth fails
    assert (got, n_shards, n_tars, reads) == (None, 3, 6, 3 + 6)
    got, n_shards, n_tars, reads = attempt()  # tars 5-8 left
    assert (n_shards, n_tars, reads) == (0, 4, 4)
    assert_same(got, want, dest, tmp_path / "seq")
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary left

    got, n_shards, n_tars, reads = attempt()  # all done: nothing read, nothing written, the same stats
    assert (n_shards, n_tars, reads) == (0, 0, 0)
    assert_same(got, want, dest, tmp_path / "seq")
    (tmp_path / "out" / "webdataset" / "shard-00007.tar").unlink()  # a finished file gone: written again
    (tmp_path / "out" / "parquet" / "train-00002-of-00007.parquet").unlink()
    got, n_shards, n_tars, reads = attempt()
    assert (n_shards, n_tars, reads) == (1, 1, 2)
    assert_same(got, want, dest, tmp_path / "seq")

    # another plan (3 documents a shard): every receipt is dropped, everything written; then all reused
    def written(per):
        with monkeypatch.context() as m:
            counted = Counted(m, ph, "write_parquet_shard")
            got = spread(work, units, dest, cfg, per, images)
        return got, len(counted.calls)

    assert written(3)[1] == 9 and written(3)[1] == 0
    # a unit written again with other rows, as many (an extended run's units): its footer differs, so the plan
    u2, u4 = (pq.read_table(Path(work) / STAGE / f"{u}.parquet") for u in ("u002", "u004"))
    pq.write_table(u4.slice(0, u2.num_rows), Path(work) / STAGE / "u002.parquet", row_group_size=3)
    got, n = written(3)
    assert n == 9
    want = sequential(work, units, str(tmp_path / "seq2"), cfg, 3, images)
    assert got == want
    fa, fb = files(dest), files(tmp_path / "seq2")  # (dest also holds the 4-document plan's Parquet names)
    assert {k: fa.get(k) for k in fb} == fb


def test_shard_tasks_read_their_units_image_rows_not_the_table(tmp_path, monkeypatch):
    """The sample run's output step (Parquet and tars: image lengths and bytes) looks images up in the join's
    rows of the units each task writes, never through every table part's footer (shards x parts at a snapshot);
    its tars hold the images, and a task reads only its own units' rows files."""
    from pipeline.images import join
    from pipeline.run import run
    from tests.pipeline.test_run import OFFLINE, sample_warc

    ranges, files = [], []
    real_ranges, real_rows = ImageTable._ranges, join.UnitImages.rows
    monkeypatch.setattr(ImageTable, "_ranges", lambda self: (ranges.append(self.folder), real_ranges(self))[1])
    monkeypatch.setattr(join.UnitImages, "rows", lambda self: (files.append(self.path), real_rows(self))[1])
    out = tmp_path / "out"
    stats = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert ranges == []
    assert stats["summary"]["images"] > 0
    with tarfile.open(next((out / "webdataset").glob("*.tar"))) as tar:
        packed = [msgpack.unpackb(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".mp")]
    assert sum(len([b for b in x if b]) for x in packed) == stats["summary"]["images"]
    units = {p.name for p in (out / "work").glob("*-image_table/units/*.parquet")}
    written = [p for p in files if isinstance(p, list)]  # the writers' tasks (a unit op reads one path)
    assert written and all({q.rsplit("/", 1)[-1] for q in p} <= units for p in written)
