"""WARC inputs and Common Crawl on object storage (the loopback S3 server): read as from a local file."""

from __future__ import annotations

import pytest

from obelics import storage
from obelics.warc import iter_html_records, iter_image_records, read_record_at, resolve_source
from pipeline.sources import cc_base_url, fetch_warc_paths
from tests.pipeline.cc_server import make_snapshot
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture


def _rows(records):
    return [(r.url, r.payload, r.charset, r.warc_filename, r.warc_record_offset, r.warc_record_length)
            for r in records]


def test_warc_on_s3_reads_like_the_local_file(s3, shared):  # noqa: F811
    local = shared("data", "warc", "dolma__sample-0000.warc.gz")
    bucket = s3.make_bucket("warcs")
    s3.client.upload_file(str(local), "warcs", "crawl-data/X/dolma.warc.gz")
    uri = bucket + "/crawl-data/X/dolma.warc.gz"
    remote = list(iter_html_records(uri))
    here = list(iter_html_records(local))
    assert len(remote) == len(here) > 0
    assert [r.payload for r in remote] == [r.payload for r in here]
    assert {r.warc_filename for r in remote} == {"crawl-data/X/dolma.warc.gz"}
    assert [r.warc_record_offset for r in remote] == [r.warc_record_offset for r in here]
    rec = remote[len(remote) // 2]
    data = read_record_at(uri, rec.warc_record_offset, rec.warc_record_length)
    assert data == read_record_at(local, rec.warc_record_offset, rec.warc_record_length)
    assert len(list(iter_image_records(uri))) == len(list(iter_image_records(local)))


def test_missing_warc_on_s3_is_an_error(s3):  # noqa: F811
    s3.make_bucket("warcs")
    with pytest.raises(FileNotFoundError):
        list(iter_html_records("s3://warcs/nope.warc.gz"))


def test_common_crawl_bucket_needs_credentials(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "OBELICS_CC_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    path = "s3://commoncrawl/crawl-data/CC-MAIN-2023-06/segments/1/warc/x.warc.gz"
    assert resolve_source(path) == "https://data.commoncrawl.org/crawl-data/CC-MAIN-2023-06/segments/1/warc/x.warc.gz"
    assert cc_base_url() == "https://data.commoncrawl.org/"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    assert resolve_source(path) == path
    assert cc_base_url() == "s3://commoncrawl/"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # credentials for another S3 server
    assert cc_base_url() == "https://data.commoncrawl.org/"
    assert cc_base_url("s3://commoncrawl") == "s3://commoncrawl/"
    monkeypatch.setenv("OBELICS_CC_BASE_URL", "http://mirror/")
    assert cc_base_url() == "http://mirror/"


def test_snapshot_listing_and_warcs_from_the_commoncrawl_bucket(s3, shared, tmp_path):  # noqa: F811
    warc = shared("data", "warc", "warcio__example.warc.gz")
    listed = make_snapshot(tmp_path / "cc", "CC-MAIN-2099-01", [warc, warc])
    s3.make_bucket("commoncrawl")
    s3.upload_tree(tmp_path / "cc", "commoncrawl")
    out = s3.make_bucket("out")
    got = fetch_warc_paths("CC-MAIN-2099-01", base_url="s3://commoncrawl/", cache_dir=out + "/cache")
    assert got == listed
    assert storage.exists(out + "/cache/CC-MAIN-2099-01/warc.paths.gz")
    s3.client.delete_object(Bucket="commoncrawl", Key="crawl-data/CC-MAIN-2099-01/warc.paths.gz")
    assert fetch_warc_paths("CC-MAIN-2099-01", base_url="s3://commoncrawl/", cache_dir=out + "/cache") == listed
    recs = list(iter_html_records("s3://commoncrawl/" + listed[1]))
    assert recs and recs[0].warc_filename == listed[1]


def test_run_reads_its_warc_from_s3(s3, tmp_path):  # noqa: F811
    """`obelics run --warc s3://...` (it failed with "no such WARC: .../s3:/..."): same documents as
    from the local file; a missing object is a one-line user error."""
    from tests.pipeline.test_run import OFFLINE, run_cli, sample_warc

    s3.make_bucket("warcs")
    s3.client.upload_file(str(sample_warc()), "warcs", "in/sample.warc.gz")
    sets = [x for o in OFFLINE + ["run.use_ray=false"] for x in ("--set", o)]
    remote = run_cli("--warc", "s3://warcs/in/sample.warc.gz", "--out", str(tmp_path / "remote"), *sets)
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = run_cli("--warc", str(sample_warc()), "--out", str(tmp_path / "local"), *sets)
    assert local.returncode == 0, local.stderr[-3000:]

    def docs(out):
        import pyarrow.parquet as pq

        return [(r["texts"], r["images"]) for p in sorted((out / "parquet").glob("*.parquet"))
                for r in pq.read_table(p).to_pylist()]

    assert docs(tmp_path / "remote") == docs(tmp_path / "local") and docs(tmp_path / "local")
    missing = run_cli("--warc", "s3://warcs/in/nope.warc.gz", "--out", str(tmp_path / "x"), *sets)
    assert missing.returncode == 2 and "no such WARC: s3://warcs/in/nope.warc.gz" in missing.stderr
    assert "Traceback" not in missing.stderr
