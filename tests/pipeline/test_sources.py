import pytest
import requests

from pipeline.sources import cc_url, fetch_warc_paths, input_name, plan_shard
from tests.pipeline.cc_server import CommonCrawlStandIn, make_snapshot


def test_plan_shard_partitions_every_path_once():
    paths = [f"p{i}" for i in range(23)]
    shards = [plan_shard(paths, k, 5).inputs for k in range(5)]
    assert sorted(p for s in shards for p in s) == sorted(paths)
    assert plan_shard(paths, 2, 5).inputs == ("p2", "p7", "p12", "p17", "p22")
    assert plan_shard(paths, 0, 1, limit=3).inputs == ("p0", "p1", "p2")
    with pytest.raises(ValueError):
        plan_shard(paths, 5, 5)


def test_cc_url_and_names():
    assert cc_url("crawl-data/X/a.warc.gz", "http://h/") == "http://h/crawl-data/X/a.warc.gz"
    assert cc_url("https://other/x") == "https://other/x"
    assert input_name("crawl-data/X/a.warc.gz") != input_name("crawl-data/Y/a.warc.gz")


def test_fetch_warc_paths_from_loopback(tmp_path, shared):
    warc = shared("data", "warc", "warcio__example.warc.gz")
    listed = make_snapshot(tmp_path / "cc", "CC-MAIN-2099-01", [warc, warc])
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        got = fetch_warc_paths("CC-MAIN-2099-01", base_url=base, cache_dir=tmp_path / "cache")
        assert got == listed
        r = requests.get(base + listed[0], headers={"Range": "bytes=0-9"}, timeout=5)
        assert r.status_code == 206 and r.content == warc.read_bytes()[:10]
    # cached copy is used once the server is gone
    assert fetch_warc_paths("CC-MAIN-2099-01", base_url=base, cache_dir=tmp_path / "cache") == listed
