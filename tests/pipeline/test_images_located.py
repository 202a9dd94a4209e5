"""The image table from image records located during extraction equals the one from a second scan."""

from __future__ import annotations

import pyarrow.parquet as pq

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


def test_image_table_from_locations_equals_the_full_scan(shared, tmp_path):
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
    read = [pq.read_table(p).to_pylist() for p in (full.parts()[0], fast.parts()[0])]
    assert read[0] == read[1] and any(r["status"] == "success" for r in read[0])
    assert {r["reason"] for r in read[0] if r["url"] == wanted[-1]} == {"not_in_warc"}


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
