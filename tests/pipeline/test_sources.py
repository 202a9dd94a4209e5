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


def test_fetch_warc_paths_from_loopback(tmp_path, shared, monkeypatch):
    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")  # the address guard lets the stand-in through
    warc = shared("data", "warc", "warcio__example.warc.gz")
    listed = make_snapshot(tmp_path / "cc", "CC-MAIN-2099-01", [warc, warc])
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        got = fetch_warc_paths("CC-MAIN-2099-01", base_url=base, cache_dir=tmp_path / "cache")
        assert got == listed
        r = requests.get(base + listed[0], headers={"Range": "bytes=0-9"}, timeout=5)
        assert r.status_code == 206 and r.content == warc.read_bytes()[:10]
    # cached copy is used once the server is gone
    assert fetch_warc_paths("CC-MAIN-2099-01", base_url=base, cache_dir=tmp_path / "cache") == listed


def test_shard_ranges_and_several_snapshots_make_one_input_list(tmp_path, shared, monkeypatch):
    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")  # the address guard lets the stand-in through
    import argparse

    from obelics.commands.run import parse_shards, register, resolve, snapshot_inputs

    assert parse_shards("0-3", 10) == [0, 1, 2, 3]
    assert parse_shards("0,5,7-8", 10) == [0, 5, 7, 8]
    assert parse_shards("1 2", 10) == [1, 2] and parse_shards(4, 10) == [4]
    for bad in ("3-1", "0-10", "x", "1,1", ""):
        with pytest.raises(ValueError):
            parse_shards(bad, 10)
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    warc = shared("data", "warc", "warcio__example.warc.gz")
    listed = {s: make_snapshot(tmp_path / "cc", s, [warc] * 4) for s in ("CC-MAIN-2099-01", "CC-MAIN-2099-02")}
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        args = p.parse_args(["run", "--out", str(tmp_path / "o"), "--snapshot", "CC-MAIN-2099-01",
                             "--snapshot", "CC-MAIN-2099-02", "--shards", "1-2", "--num-shards", "4",
                             "--cc-base-url", base])
        conf = resolve(args)
        assert conf["snapshot"] == ["CC-MAIN-2099-01", "CC-MAIN-2099-02"] and conf["shards"] == [1, 2]
        inputs = snapshot_inputs(conf, tmp_path / "cache")
    want = [cc_url(listed[s][k], base) for s in listed for k in (1, 2)]
    assert inputs == want
    assert len({input_name(i) for i in inputs}) == 4  # unit names stay unique across snapshots
    # one space-separated value (what `make crawl-shard SNAPSHOT="A B"` passes) and the old --shard
    conf = resolve(p.parse_args(["run", "--out", "o", "--snapshot", "A B", "--shard", "3", "--num-shards", "4"]))
    assert conf["snapshot"] == ["A", "B"] and conf["shards"] == [3]
    for wrong in (["--shard", "1", "--shards", "2"], ["--shards", "4", "--num-shards", "4"],
                  ["--snapshot", "A"]):
        with pytest.raises(ValueError):
            resolve(p.parse_args(["run", "--out", "o", "--snapshot", "A", *wrong]))


def test_warc_paths_fetch_goes_through_the_address_guard(tmp_path, shared, monkeypatch):
    """The loopback stand-in is refused unless allow-listed, and an allowed server's redirect to another
    private address is refused too; the error says how to allow a mirror."""
    from tests.filters.optout_server import Site

    warc = shared("data", "warc", "warcio__example.warc.gz")
    make_snapshot(tmp_path / "cc", "CC-MAIN-2099-01", [warc])
    monkeypatch.delenv("OBELICS_NET_ALLOW", raising=False)
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        with pytest.raises(ValueError, match="address_refused:loopback.*OBELICS_NET_ALLOW"):
            fetch_warc_paths("CC-MAIN-2099-01", base_url=base)
    hop = Site({"/crawl-data/CC-MAIN-2099-01/warc.paths.gz": (302, [("Location", "http://127.0.0.2:9/x.gz")], b"")})
    try:
        monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")  # the test's own server only
        with pytest.raises(ValueError, match="address_refused:loopback 127.0.0.2"):
            fetch_warc_paths("CC-MAIN-2099-01", base_url=hop.origin)
        assert hop.hits["/crawl-data/CC-MAIN-2099-01/warc.paths.gz"] == 1  # the first hop was allowed
    finally:
        hop.close()
