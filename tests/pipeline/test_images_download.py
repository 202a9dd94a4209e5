"""End to end against a loopback server: img2dataset download -> image table -> merge -> shards.

The server serves real photos (scikit-image's) and every failure the issue lists: 404/500, a slow
response (past the timeout), a redirect, an opt-out header, an oversized image, a truncated file and
a page that is not an image. One img2dataset run (one process, few threads) is shared by the tests.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from filters.base import FilterStats
from obelics.document import HUB_SCHEMA, WebDocument, documents_to_table
from pipeline.images.config import ImagesConfig
from pipeline.images.download import download_images, unique_urls
from pipeline.images.loopback import LoopbackImageServer, skimage_photos
from pipeline.images.merge import merge_table

PHOTOS = skimage_photos(("astronaut.png", "rocket.jpg", "chelsea.png", "horse.png", "no_time_for_that_tiny.gif"))
CFG = ImagesConfig(processes_count=1, thread_count=4, timeout=1.0, retries=0)
ALLOW = ["127.0.0.1/32"]  # the address guard lets the test's own loopback server through, nothing else

GOOD = [("img", "astronaut.png"), ("img", "rocket.jpg"), ("img", "no_time_for_that_tiny.gif"),
        ("redirect", "chelsea.png"), ("tdm", "horse.png")]
BAD = {("status", "404"): "http_404", ("status", "500"): "http_500", ("slow", "horse.png"): "timeout",
       ("noai", "rocket.jpg"): "optout:x-robots-tag", ("truncated", "rocket.jpg"): "truncated",
       ("html", "page"): "not_image", ("bomb", "x"): "too_many_pixels"}


def _docs(urls: list[str]) -> list[WebDocument]:
    docs = []
    for k in range(0, len(urls), 4):
        texts, images, meta = [f"Document {k} opens with a paragraph of words."], [None], [None]
        for u in urls[k:k + 4]:
            texts += [None, "Some words after the image."]
            images += [u, None]
            meta += [{"src": u, "document_url": "http://site/page"}, None]
        docs.append(WebDocument(texts=texts, images=images, metadata=meta,
                                general_metadata={"url": f"http://site/page{k}", "warc_filename": "x.warc.gz",
                                                  "warc_record_offset": k, "warc_record_length": 10}))
    return docs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("images")
    with LoopbackImageServer(PHOTOS, slow_seconds=3) as srv:
        good = {srv.url(*k): k for k in GOOD}
        bad = {srv.url(*k): reason for k, reason in BAD.items()}
        urls = list(good) + list(bad)
        docs = _docs(urls + urls[:3])  # URLs repeat across documents: downloaded once
        table = download_images(unique_urls([documents_to_table(docs)]), work, CFG, ALLOW)
        requests = list(srv.requests)
    return {"work": work, "good": good, "bad": bad, "docs": docs, "table": table, "requests": requests,
            "urls": urls}


def test_right_images_arrive_intact(run):
    rows = run["table"].lookup(run["good"])
    assert set(rows) == set(run["good"])
    for url, (_, name) in run["good"].items():
        r = rows[url]
        assert r["status"] == "success", (url, r["error_message"])
        assert r["bytes"] == PHOTOS[name]  # original bytes: no re-encoding by default
        assert r["sha256"] == hashlib.sha256(PHOTOS[name]).hexdigest()
    assert rows[next(u for u, k in run["good"].items() if k[0] == "redirect")]["final_url"].endswith("/img/chelsea.png")
    gif = next(u for u, k in run["good"].items() if k[1].endswith(".gif"))
    assert rows[gif]["format"] == "gif"  # GIFs survive (the original lost them)


def test_every_other_image_counted_with_its_reason(run):
    rows = run["table"].lookup(run["bad"], with_bytes=False)
    assert {u: rows[u]["reason"] for u in run["bad"]} == run["bad"]
    assert all(rows[u]["status"] == "failed" for u in run["bad"])
    assert sum(run["table"].counts().values()) == len(run["urls"])


def test_honest_user_agent_and_headers_recorded(run):
    agents = {ua for _, ua in run["requests"]}
    assert agents == {CFG.user_agent}
    tdm = next(u for u, k in run["good"].items() if k[0] == "tdm")
    assert json.loads(run["table"].lookup([tdm])[tdm]["headers"])["tdm-reservation"] == "1"
    noai = next(u for u, r in run["bad"].items() if r.startswith("optout"))
    assert json.loads(run["table"].lookup([noai])[noai]["headers"])["x-robots-tag"] == "noai"
    # img2dataset's per-shard stats file marks the shard done (incremental resume)
    assert list((run["work"] / "img2dataset").glob("*_stats.json"))


def test_merge_and_shards_end_to_end(run, tmp_path):
    import datasets
    import webdataset as wds

    from pipeline.writers.parquet_hub import write_parquet_shard
    from pipeline.writers.webdataset import read_sample, write_webdataset

    stats = FilterStats("images.merge")
    merged = merge_table(documents_to_table(run["docs"]), run["table"], stats)
    d = stats.as_dict()
    n_nodes = sum(d["dropped"]["image"].values()) + d["out"]["image"]
    assert n_nodes == d["in"]["image"] == len(run["urls"]) + 3
    assert d["dropped"]["image"]["timeout"] == 1 and d["dropped"]["image"]["http_404"] == 1
    pstats = write_parquet_shard(merged, tmp_path / "parquet" / "shard-00000.parquet")
    assert pq.read_schema(tmp_path / "parquet" / "shard-00000.parquet").remove_metadata().equals(HUB_SCHEMA)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "parquet" / "*.parquet"), split="train")
    assert ds.num_rows == len(run["docs"]) == pstats["documents"]
    wstats = write_webdataset(merged, tmp_path / "wds", prefix="shard-00000", max_count=2)
    assert len(wstats) == (len(run["docs"]) + 1) // 2
    seen = 0
    for s in wds.WebDataset(sorted(str(p) for p in (tmp_path / "wds").glob("*.tar")), shardshuffle=False):
        doc, blobs = read_sample(s)
        meta = json.loads(doc["metadata"])
        for pos, data in enumerate(blobs):
            if data is not None:
                assert hashlib.sha256(data).hexdigest() == meta[pos]["sha256"]
                seen += 1
    assert seen == d["out"]["image"]


@pytest.mark.slow
def test_rerun_resumes_without_downloading_again(run):
    with LoopbackImageServer(PHOTOS) as srv:
        # same URL list (the other server's), so img2dataset finds its shard done and fetches nothing
        table = download_images(run["urls"], run["work"], CFG, ALLOW)
        assert srv.requests == []
    assert table.counts() == run["table"].counts()


@pytest.mark.slow
def test_obelics_2023_reencodes_to_jpeg(tmp_path):
    from obelics.config import load_profile

    cfg = load_profile("obelics-2023").section("images", ImagesConfig)
    cfg.processes_count, cfg.thread_count, cfg.timeout = 1, 4, 2.0
    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url("img", "astronaut.png"), srv.url("img", "no_time_for_that_tiny.gif")]
        rows = download_images(urls, tmp_path, cfg, ALLOW).lookup(urls)
    png = rows[urls[0]]
    assert png["status"] == "success" and png["format"] == "jpeg" and (png["width"], png["height"]) == (512, 512)
    assert png["sha256"] == hashlib.sha256(png["bytes"]).hexdigest()
    assert rows[urls[1]]["status"] == "failed"  # OpenCV cannot decode GIF: lost, as in the original build


def test_no_urls_no_download(tmp_path):
    table = download_images([], tmp_path, CFG)
    assert table.counts() == {} and not (tmp_path / "img2dataset").exists()


@pytest.mark.slow
def test_download_from_a_worker_thread(tmp_path):
    import threading

    out = {}
    with LoopbackImageServer(PHOTOS) as srv:
        url = srv.url("img", "rocket.jpg")
        th = threading.Thread(target=lambda: out.update(t=download_images([url], tmp_path, CFG, ALLOW)))
        th.start()
        th.join(timeout=300)
    assert out["t"].lookup([url])[url]["bytes"] == PHOTOS["rocket.jpg"]


def _shard_bytes(work) -> list:
    """Every value of the image column of img2dataset's shards under ``work``."""
    from pipeline.images.download import I2D_DIR

    return [v for p in sorted((work / I2D_DIR).glob("*.parquet")) for v in pq.read_table(p).column("jpg").to_pylist()]


def test_images_written_once_by_the_workers(run, tmp_path):
    """Each shard's part is written in the img2dataset worker that downloaded it (no part is left for the
    parent), with the image bytes, which img2dataset's own shard does not hold (each image written once);
    it is byte for byte the part the parent builds from a shard img2dataset wrote with its bytes."""
    import img2dataset

    from pipeline.images.download import I2D_DIR, URLS_FILE, _our_downloader, build_table, img2dataset_kwargs
    from pipeline.images.table import ImageTable

    statuses = pq.read_table(next((run["work"] / I2D_DIR).glob("*.parquet"))).column("status").to_pylist()
    assert "success" in statuses and not any(_shard_bytes(run["work"]))  # the bytes are only in the parts
    assert all(r["bytes"] for r in run["table"].lookup(run["good"]).values())
    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url(*k) for k in GOOD if k[0] != "tdm"] + [srv.url("status", "404"), srv.url("truncated", "rocket.jpg")]
        worker = tmp_path / "worker"
        table = download_images(urls, worker, CFG, ALLOW)
        parts = sorted(p.name for p in (worker / "table").glob("part-*.parquet"))
        assert parts and len(parts) == len(list((worker / I2D_DIR).glob("*_stats.json")))
        # img2dataset writing its shard with the bytes (no table hook), the parent building the parts from it
        alone = tmp_path / "alone"
        alone.mkdir()
        (alone / URLS_FILE).write_bytes((worker / URLS_FILE).read_bytes())
        with _our_downloader(CFG, ALLOW):
            img2dataset.download(**img2dataset_kwargs(CFG, alone / URLS_FILE, alone / I2D_DIR))
    assert sum(b is not None for b in _shard_bytes(alone)) == 5 and not any(_shard_bytes(worker))
    rebuilt = build_table(alone, CFG)
    assert {p.rsplit("/", 1)[-1]: open(p, "rb").read() for p in rebuilt.parts()} == \
        {p: (worker / "table" / p).read_bytes() for p in parts}
    assert table.counts() == ImageTable(alone / "table").counts() == {"success": 4, "http_404": 1, "truncated": 1}


@pytest.mark.slow
def test_a_finished_shard_without_its_part_is_downloaded_again(tmp_path):
    """A shard marked done whose part is gone cannot be rebuilt from img2dataset's file (no bytes there): it
    is downloaded again, and the table is whole."""
    from pipeline.images.download import I2D_DIR

    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url("img", "rocket.jpg"), srv.url("img", "astronaut.png")]
        first = download_images(urls, tmp_path, CFG, ALLOW).lookup(urls)
        for part in (tmp_path / "table").glob("part-*.parquet"):
            part.unlink()
        srv.requests.clear()
        table = download_images(urls, tmp_path, CFG, ALLOW)
        assert len(srv.requests) == 2  # fetched again, once each
    assert table.lookup(urls) == first and first[urls[0]]["bytes"] == PHOTOS["rocket.jpg"]
    assert len(list((tmp_path / I2D_DIR).glob("*_stats.json"))) == 1


@pytest.mark.slow
def test_parts_written_to_object_storage_by_the_workers(tmp_path, monkeypatch):
    """With the work folder on S3, the workers write each part (with its bytes) there; img2dataset's shards
    stay in the local scratch folder with the metadata only; any node reads the table from S3."""
    from pipeline.images.download import I2D_DIR, scratch_dir
    from pipeline.images.table import ImageTable
    from tests.pipeline.s3_server import LoopbackS3

    monkeypatch.setenv("OBELICS_SCRATCH", str(tmp_path / "scratch"))
    with LoopbackS3() as s3, LoopbackImageServer(PHOTOS) as srv:
        work = s3.make_bucket("run") + "/images"
        urls = [srv.url("img", "rocket.jpg"), srv.url("img", "no_time_for_that_tiny.gif"), srv.url("status", "404")]
        download_images(urls, work, CFG, ALLOW)
        assert [k for k in s3.keys("run") if k.startswith("images/table/")] == ["images/table/part-00000.parquet"]
        rows = ImageTable(work + "/table").lookup(urls)  # a fresh reader, as another node would
        assert rows[urls[0]]["bytes"] == PHOTOS["rocket.jpg"] and rows[urls[2]]["reason"] == "http_404"
        assert not any(_shard_bytes(scratch_dir(work))) and (scratch_dir(work) / I2D_DIR).exists()


def _url_files(folder, parts: list[list[str]]) -> list[str]:
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, urls in enumerate(parts):
        pq.write_table(pa.table({"url": pa.array(urls, pa.string())}), folder / f"urls-{k:06d}.parquet")
        files.append(str(folder / f"urls-{k:06d}.parquet"))
    return files


def test_url_files_regrouped_into_whole_shards_and_resumed(tmp_path, monkeypatch):
    """The run's distinct-URL files (one per hash partition, each sorted, of any size) are copied in order into
    files of whole img2dataset shards (img2dataset cuts each input file on its own), a batch at a time; the
    digest is the plain list's for the same order, so the same list resumes and another discards the download."""
    from pipeline.images import download as dl

    monkeypatch.setattr(dl, "URL_LIST_SHARDS", 2)
    parts = [[f"http://b/{i:03d}" for i in range(3)], [], [f"http://a/{i:03d}" for i in range(5)], ["http://c/0"]]
    files = _url_files(tmp_path / "in", parts)
    src = dl.UrlFiles(tuple(files), 9)
    with pytest.raises(TypeError):
        list(src)  # the guard: never one list in the driver
    work = tmp_path / "w"
    work.mkdir()
    assert dl._write_url_files(src, work, per_shard=2)
    got = [pq.read_table(p).column("url").to_pylist() for p in sorted((work / dl.URL_LIST_DIR).glob("*.parquet"))]
    flat = [u for p in parts for u in p]
    assert [len(g) for g in got] == [4, 4, 1] and sum(got, []) == flat
    assert (work / "urls.sha256").read_text() == hashlib.sha256("\n".join(flat).encode()).hexdigest() + "\n"
    (work / dl.I2D_DIR).mkdir()
    (work / dl.I2D_DIR / "00000_stats.json").write_text("{}")
    assert not dl._write_url_files(src, work, per_shard=2) and (work / dl.I2D_DIR / "00000_stats.json").exists()
    assert dl._write_url_files(dl.UrlFiles(tuple(files[:2]), 3), work, per_shard=2)
    assert not (work / dl.I2D_DIR).exists()  # another list: img2dataset's shards would not match it


@pytest.mark.slow
def test_url_files_download_the_same_table_as_the_list(tmp_path, monkeypatch):
    """Given files of distinct URLs (as the run's tasks write them) instead of the URLs, img2dataset reads the
    regrouped files: the same rows, as many shards as the one list makes, and a rerun fetches nothing."""
    from dataclasses import replace

    from pipeline.images import download as dl

    monkeypatch.setattr(dl, "URL_LIST_SHARDS", 1)
    cfg = replace(CFG, number_sample_per_shard=2)
    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url(*k) for k in GOOD] + [srv.url("status", "404"), srv.url("truncated", "rocket.jpg")]
        listed = download_images(urls, tmp_path / "list", cfg, ALLOW)
        files = _url_files(tmp_path / "in", [sorted(urls[k::3]) for k in (2, 0, 1)])
        table = download_images(dl.UrlFiles(tuple(files), len(urls)), tmp_path / "files", cfg, ALLOW)
        assert len(list((tmp_path / "files" / dl.URL_LIST_DIR).glob("*.parquet"))) == 4
        srv.requests.clear()
        again = download_images(dl.UrlFiles(tuple(files), len(urls)), tmp_path / "files", cfg, ALLOW)
        assert srv.requests == []
    assert table.lookup(urls) == listed.lookup(urls) == again.lookup(urls)
    assert table.counts() == listed.counts() and table.counts()["success"] == 5
    shards = [len(list((tmp_path / d / dl.I2D_DIR).glob("*_stats.json"))) for d in ("list", "files")]
    assert shards == [4, 4]
