"""The image table from image records located during extraction equals the one from a second scan."""

from __future__ import annotations

import pytest

from obelics.records import ReadStats
from obelics.warc import iter_html_records, iter_image_records
from pipeline.images.offline import html_records_locating_images, warc_image_table
from tests.pipeline.test_run import OFFLINE, sample_warc

WARCS = ["ukwa__wikipedia-mona-lisa.warc.gz", "pywb__iana.warc.gz", "resiliparse__clipped.warc.gz",
         "warcio__example-iana.org-chunked.warc", "dolma__sample-0000.warc.gz"]


def _sources(shared):
    return [str(sample_warc())] + [str(shared("data", "warc", w)) for w in WARCS]


def test_locating_scan_reads_the_same_html_records_and_counts(shared):
    for src in _sources(shared):
        a, b = ReadStats(), ReadStats()
        plain = [(r.url, r.payload, r.warc_record_offset, r.warc_record_length) for r in iter_html_records(src, stats=a)]
        found = []
        located = [(r.url, r.payload, r.warc_record_offset, r.warc_record_length)
                   for r in html_records_locating_images(src, stats=b, found=found)]
        assert located == plain and a.as_dict() == b.as_dict(), src
        images = [(r.url, r.warc_record_offset, r.warc_record_length) for r in iter_image_records(src)]
        assert sorted(found) == sorted(images), src  # every image response record, where the reader finds it


def test_image_table_from_locations_equals_the_full_scan(shared, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import pipeline.images.offline as offline
    from filters.dedup.common import hash64

    monkeypatch.setattr(offline, "URLS_PER_PARTITION", 4)  # several partitions, each a task and a part
    sources = _sources(shared)
    located = {}
    for src in sources:
        found = []
        for _ in html_records_locating_images(src, found=found):
            pass
        located[src] = found
    urls = sorted({u for f in located.values() for u, _, _ in f})
    assert len(urls) >= 10
    wanted = urls[::2] + ["https://absent.example/x.png"]
    full = warc_image_table(sources, tmp_path / "full", wanted=wanted)
    fast = warc_image_table(sources, tmp_path / "fast", wanted=wanted, located=located)
    read = [_rows(full), _rows(fast)]
    assert read[0] == read[1] == _one_pass(sources, wanted) and any(r["status"] == "success" for r in read[0])
    assert {r["reason"] for r in read[0] if r["url"] == wanted[-1]} == {"not_in_warc"}
    P = -(-len(wanted) // 4)
    for part in fast.parts():  # a part per hash partition of the wanted URLs (each task's), not_in_warc rows too
        q = int(part.rsplit("-", 1)[1].removesuffix(".parquet"))
        urls_q = pq.read_table(part, columns=["url"]).column("url").to_pylist()
        assert urls_q and {int(h) % P for h in hash64(urls_q)} == {q}
    assert len(fast.parts()) == len({int(h) % P for h in hash64(wanted)}) > 1


def _rows(table) -> list[dict]:
    return sorted(table.read().to_pylist(), key=lambda r: r["url"])


def _one_pass(sources, wanted, cfg=None) -> list[dict]:
    """The image table of one pass over every source's records in the driver (what the offline source did
    before each source got a task of its own): first success of a URL wins, else its last failure."""
    from pipeline.images.config import ImagesConfig
    from pipeline.images.offline import table_from_records
    from pipeline.images.table import make_row

    cfg = cfg or ImagesConfig()
    rows = table_from_records((r for s in sources for r in iter_image_records(s)), cfg, set(wanted)).to_pylist()
    rows += [make_row(u, None, cfg, reason="not_in_warc", source="warc") for u in set(wanted) - {r["url"] for r in rows}]
    return sorted(rows, key=lambda r: r["url"])


def _warc(path, responses) -> str:
    """A WARC of image ``responses`` [(url, status, body)]."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for url, status, body in responses:
            http = StatusAndHeaders(f"{status} X", [("Content-Type", "image/png")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=BytesIO(body), http_headers=http))
    return str(path)


def _same_url_in_several_warcs(tmp_path) -> tuple[list[str], list[str]]:
    from pipeline.images.loopback import skimage_photos

    png = skimage_photos(("astronaut.png",))["astronaut.png"]
    a = _warc(tmp_path / "a.warc.gz", [("http://x/1.png", 404, b"no"), ("http://x/2.png", 200, png),
                                       ("http://x/3.png", 500, b"err"), ("http://x/4.png", 200, png[:100])])
    b = _warc(tmp_path / "b.warc.gz", [("http://x/1.png", 200, png), ("http://x/2.png", 404, b"no"),
                                       ("http://x/3.png", 403, b"no"), ("http://x/5.png", 200, png)])
    c = _warc(tmp_path / "c.warc.gz", [("http://x/2.png", 200, png[:-10] + b"0123456789"),
                                       ("http://x/4.png", 200, png)])
    return [a, b, c, a], [f"http://x/{i}.png" for i in range(1, 7)]


def test_a_url_in_several_warcs_keeps_the_row_one_pass_keeps(tmp_path):
    """Each WARC is read by its own task; the row that stays for a URL in several is one pass's: the first
    success (2 from a, not c; 1 from b), else the last failure (3: a's 500, a being read again after b's
    403); a truncated body (4 in a) is a failure a later success replaces. Every other task's row is gone."""
    sources, wanted = _same_url_in_several_warcs(tmp_path)
    table = warc_image_table(sources, tmp_path / "t", wanted=wanted)
    rows = _rows(table)
    assert rows == _one_pass(sources, wanted)
    assert [(r["url"][-5:], r["status"], r["reason"]) for r in rows] == [
        ("1.png", "success", None), ("2.png", "success", None), ("3.png", "failed", "http_500"),
        ("4.png", "success", None), ("5.png", "success", None), ("6.png", "failed", "not_in_warc")]
    assert table.read().num_rows == 6 and len(table.parts()) == 1  # one partition: its task reads a, b, c, a
    again = warc_image_table(sources[1:2], tmp_path / "t", wanted=wanted[:2])  # rebuilt whole: no stale part
    assert _rows(again) == _one_pass(sources[1:2], wanted[:2])


@pytest.mark.slow
def test_image_records_read_by_ray_tasks(tmp_path):
    """On Ray the WARCs are read by tasks, not the driver: the same table as one pass, and the driver
    never opens a WARC."""
    import obelics.warc

    sources, wanted = _same_url_in_several_warcs(tmp_path)
    opened = []
    real = obelics.warc.iter_image_records
    try:
        obelics.warc.iter_image_records = lambda src, *a, **k: (opened.append(src), real(src, *a, **k))[1]
        table = warc_image_table(sources, tmp_path / "t", wanted=wanted, use_ray=True)
    finally:
        obelics.warc.iter_image_records = real
    assert opened == [] and _rows(table) == _one_pass(sources, wanted)


def test_a_run_reads_its_image_records_by_location(tmp_path, monkeypatch):
    """The sample run notes its image records while extracting and never scans its WARC a second time."""
    import obelics.warc
    from pipeline.run import run

    scans = []
    real = obelics.warc.iter_image_records
    monkeypatch.setattr(obelics.warc, "iter_image_records",
                        lambda src, *a, **k: (scans.append(src), real(src, *a, **k))[1])
    stats = run("default", tmp_path / "out", [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert stats["summary"]["images"] > 0
    assert scans and not any(isinstance(s, str) for s in scans)  # only in-memory members, never the file
    assert list((tmp_path / "out" / "work").glob("00-*/*.image_records.parquet"))


def _partitioned(urls: list[str], P: int, folder):
    """``urls`` as the run's distinct-URL files (:func:`pipeline.images.join.distinct_urls`: a sorted file per
    hash partition) and the fetch's handle on them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from filters.dedup.common import hash64
    from pipeline.images.join import url_files

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for q in range(P):
        mine = sorted(u for u, h in zip(urls, hash64(urls)) if int(h) % P == q)
        if mine:
            files.append(str(folder / f"urls-{q:06d}.parquet"))
            pq.write_table(pa.table({"url": pa.array(mine, pa.string())}), files[-1])
    return url_files(files, len(urls), P)


def _location_files(sources, folder) -> dict[str, str]:
    """Each source's image-record list as the extraction writes it (``<unit>.image_records.parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, src in enumerate(dict.fromkeys(sources)):
        found = [(r.url, r.warc_record_offset, r.warc_record_length) for r in iter_image_records(src)]
        out[src] = str(folder / f"u{i}.image_records.parquet")
        pq.write_table(pa.table({"url": pa.array([f[0] for f in found], pa.string()),
                                 "offset": pa.array([f[1] for f in found], pa.int64()),
                                 "length": pa.array([f[2] for f in found], pa.int64())}), out[src])
    return out


def test_wanted_and_location_files_are_read_by_tasks_only(tmp_path, monkeypatch):
    """The run's form: the wanted URLs as hash-partitioned files and the sources' image-record lists as files
    (one source without: scanned by a task). The table is one pass's (first success, else last failure, in
    source order; not_in_warc), whatever the partitions; no URL file or list is read in the driver."""
    from obelics import storage
    from pipeline import shuffle
    from pipeline.shuffle import LocalBackend

    sources, wanted = _same_url_in_several_warcs(tmp_path)
    located = _location_files(sources, tmp_path / "extract")
    del located[sources[1]]  # b is scanned
    in_task, reads = [0], []

    def counted(fn):
        def call(self, f, calls, *a):
            def task(*args):
                in_task[0] += 1
                try:
                    return f(*args)
                finally:
                    in_task[0] -= 1
            return fn(self, task, calls, *a)
        return call

    for name in ("map", "imap", "map_unordered"):
        monkeypatch.setattr(LocalBackend, name, counted(getattr(LocalBackend, name)))
    for mod in (storage, shuffle):
        for name in ("read_parquet", "parquet_file"):
            real = getattr(mod, name)
            monkeypatch.setattr(mod, name, lambda p, *a, _r=real, **k: (reads.append((str(p), in_task[0] > 0)),
                                                                        _r(p, *a, **k))[1])
    import pipeline.images.offline as offline
    from filters.dedup.config import DedupConfig
    from pipeline.dedup import shuffle_plan

    monkeypatch.setattr(offline, "RECORD_FILES_PER_TASK", 1)  # a map task a source
    rounds = DedupConfig(shuffle_fan_in=2, shuffle_single_round_max=2)
    assert shuffle_plan(len(sources), 7, rounds).multi
    for P, dcfg in ((1, None), (3, None), (7, rounds)):
        urls = _partitioned(wanted, P, tmp_path / f"urls-{P}")
        table = warc_image_table(sources, tmp_path / f"t{P}", wanted=urls, located=located, dedup=dcfg, use_ray=False)
        assert _rows(table) == _one_pass(sources, wanted)
        assert len(table.parts()) == len(urls.files)  # a part per partition holding wanted URLs
    ours = [(p, t) for p, t in reads if "urls-" in p or "image_records" in p or "located-" in p]
    assert ours and all(t for _, t in ours), [p for p, t in ours if not t]


@pytest.mark.slow
def test_wanted_and_location_files_on_ray_equal_one_pass(tmp_path):
    pytest.importorskip("ray")
    sources, wanted = _same_url_in_several_warcs(tmp_path)
    located = _location_files(sources[:1], tmp_path / "extract")  # a located; b and c scanned
    table = warc_image_table(sources, tmp_path / "t", wanted=_partitioned(wanted, 4, tmp_path / "urls"),
                             located=located, use_ray=True)
    assert _rows(table) == _one_pass(sources, wanted)


@pytest.mark.parametrize("P", [1, 3])
def test_a_partition_writes_its_rows_as_they_are_decided(P, tmp_path, monkeypatch):
    """Past ``PART_BYTES`` of image bytes a partition's task writes a part (a URL's first success is final), so
    it does not hold its partition's bytes: with a budget of 1 byte every success is a part of its own and the
    failures and not_in_warc rows one more; the table is still one pass's, each URL in one part."""
    import pipeline.images.offline as offline

    monkeypatch.setattr(offline, "PART_BYTES", 1, raising=False)
    sources, wanted = _same_url_in_several_warcs(tmp_path)
    urls = _partitioned(wanted, P, tmp_path / "urls")
    table = warc_image_table(sources, tmp_path / "t", wanted=urls, use_ray=False)
    rows = _rows(table)
    assert rows == _one_pass(sources, wanted)
    import pyarrow.parquet as pq

    from filters.dedup.common import hash64

    failed = [r["url"] for r in rows if r["status"] != "success"]
    with_failures = {int(h) % P for h in hash64(failed)}  # the partitions writing a last part
    assert len(table.parts()) == len(rows) - len(failed) + len(with_failures) > P  # more parts than partitions
    assert sum(pq.read_metadata(p).num_rows for p in table.parts()) == len(rows) == len(wanted)
