"""``obelics view``: the viewer's API over the sample run (documents, search, drops, side by side), a run in
progress, binding to loopback, and paging through a synthetic run of 1 million documents with flat memory.

The same pages in a real browser: tests/pipeline/test_view_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT
from tests.pipeline.test_run import OFFLINE, sample_warc

pytest.importorskip("starlette", reason="the viewer needs the view extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="the viewer needs the view extra (starlette, uvicorn)")


def sample_run(base: Path, profile: str = "default") -> Path:
    """The sample run (offline, no Ray) in ``base/view-sample[-profile]``, made once per session."""
    out = base / ("view-sample" if profile == "default" else f"view-sample-{profile}")
    if not (out / "stats.json").exists():
        from pipeline.run import run

        run(profile, out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    return out


@pytest.fixture(scope="session")
def sample_out(tmp_path_factory) -> Path:
    return sample_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def client(sample_out):
    from starlette.testclient import TestClient

    from pipeline.view.app import create_app

    with TestClient(create_app(str(sample_out))) as c:
        yield c


def published_rows(out: Path) -> list[dict]:
    return [r for p in sorted((out / "parquet").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_documents_render_in_page_order_with_their_images(client, sample_out):
    rows = published_rows(sample_out)
    s = client.get("/api/summary").json()
    assert s["documents"] == len(rows) and s["finished"] and s["source"] == "parquet"
    page = client.get("/api/docs?start=0&n=50").json()
    assert [d["url"] for d in page["documents"]] == [json.loads(r["general_metadata"])["url"] for r in rows]
    from pipeline.images.table import ImageTable
    from pipeline.view.runfolder import RunFolder

    table = ImageTable(RunFolder(str(sample_out)).image_table_dir())
    for i, row in enumerate(rows):
        d = client.get(f"/api/doc/{i}").json()
        # the nodes as they will be trained on: texts and images interleaved in the row's order
        expected = [("image", u) if u is not None else ("text", t) for t, u in zip(row["texts"], row["images"])]
        assert [(n["type"], n["url"] if n["type"] == "image" else n["text"]) for n in d["nodes"]] == expected
        gm = json.loads(row["general_metadata"])
        assert d["warc"] == {k: gm[k] for k in ("warc_filename", "warc_record_offset", "warc_record_length")}
        assert d["images"] == sum(u is not None for u in row["images"])
        assert d["words"] == sum(len(t.split()) for t in row["texts"] if t)
        for n in d["nodes"]:
            if n["type"] == "image":
                assert n["meta"].get("original_width")  # the metadata shown on hover
                r = client.get("/api/image", params={"url": n["url"]})
                assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
                assert r.content == table.lookup([n["url"]])[n["url"]]["bytes"]
    assert client.get("/api/doc/999").status_code == 404
    assert client.get("/api/image", params={"url": "https://elsewhere.example/x.jpg"}).status_code == 404
    assert 0 <= client.get("/api/random").json()["index"] < len(rows)


def test_images_from_webdataset_shards_without_image_table(sample_out, tmp_path):
    """A published folder without its work folder still shows its images (from the WebDataset shards)."""
    from pipeline.images.table import ImageTable
    from pipeline.view.runfolder import RunFolder

    out = tmp_path / "published"
    for name in ("parquet", "webdataset", "stats.json", "run.json"):
        src = sample_out / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, out / name)
    table = ImageTable(RunFolder(str(sample_out)).image_table_dir())
    view = RunFolder(str(out))
    assert view.image_table_dir() is None
    urls = [u for r in published_rows(out) for u in r["images"] if u]
    assert urls
    for url in urls:
        data, _ = view.image(url)
        assert data == table.lookup([url])[url]["bytes"]


def test_images_from_shards_of_the_older_layout(tmp_path):
    """Shards written before the single ``images.mp`` member (one ``img0003.jpg`` member per image) still serve."""
    import io
    import tarfile

    from pipeline.view.runfolder import webdataset_image, webdataset_images

    (tmp_path / "wds").mkdir()
    doc = {"texts": ["a", None, "b", None], "images": [None, "https://x.example/1.png", None, "https://x.example/3.jpg"],
           "metadata": [None, {"format": "png"}, None, {"format": "jpeg"}]}
    with tarfile.open(tmp_path / "wds" / "shard-00000.tar", "w") as tf:
        for name, data in (("k1.json", json.dumps(doc).encode()), ("k1.img0001.png", b"PNG1"), ("k1.img0003.jpg", b"JPG3")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    index = webdataset_images(str(tmp_path / "wds"))
    assert webdataset_image(*index["https://x.example/1.png"]) == (b"PNG1", "png")
    assert webdataset_image(*index["https://x.example/3.jpg"]) == (b"JPG3", "jpeg")


def test_search_by_text_url_and_domain(client):
    hits = client.get("/api/search", params={"q": "hubble space telescope"}).json()["documents"]
    assert [h["url"] for h in hits] == ["https://sample.obelics.example/news/2023/hubble-deep-field.html"]
    hits = client.get("/api/search", params={"q": "older-cat", "field": "url"}).json()["documents"]
    assert len(hits) == 1 and "caring-for-an-older-cat" in hits[0]["url"]
    r = client.get("/api/search", params={"q": "sample.obelics.example", "field": "domain", "limit": 2}).json()
    assert len(r["documents"]) == 2 and r["next"] == 2  # bounded: continue from the next document
    assert client.get("/api/search", params={"q": "nowhere-to-be-found"}).json()["documents"] == []
    assert client.get("/api/search", params={"q": "x", "field": "body"}).status_code == 400


def test_drop_samples_match_the_funnel(client):
    """For every stage, level and reason of the funnel, the recomputed drops are the ones the run counted;
    each text-check drop has its metric beyond its threshold."""
    funnel = client.get("/api/funnel").json()
    checked = 0
    for st in funnel["stages"]:
        if st["stage"].endswith(".decide") or st["stage"] == "image_table":
            continue
        for level, reasons in st["dropped"].items():
            for reason, n in reasons.items():
                r = client.get("/api/drops", params={"stage": st["stage"], "level": level, "reason": reason,
                                                     "limit": 50}).json()
                assert len(r["items"]) == min(n, 50), (st["stage"], level, reason)
                for it in r["items"]:
                    assert it["kind"] == level and it["url"]
                    m = it["metric"]
                    if m and level in ("paragraph", "document") and m["name"] == reason:
                        assert (m["min"] is not None and m["value"] < m["min"]) or (
                            m["max"] is not None and m["value"] > m["max"]), (reason, m)
                        checked += 1
    assert checked >= 10
    text = next(s for s in funnel["stages"] if s["stage"] == "text_filters")
    assert text["dropped"]["paragraph"]["stopword_ratio"] > 0
    r = client.get("/api/drops", params={"stage": "text_filters", "level": "paragraph", "reason": "stopword_ratio",
                                         "limit": 50}).json()
    assert all(it["text"] and it["metric"]["name"] == "stopword_ratio" for it in r["items"])
    assert r["items"][0]["settings"]["text_filters.node.stopword_ratio_min"] == r["items"][0]["metric"]["min"]
    doc = client.get("/api/drops", params={"stage": "text_filters", "level": "document", "reason": "number_words"}).json()
    [item] = doc["items"]
    assert item["document"]["url"].endswith("/de/mond/beobachten.html")
    # shown as it entered the stage; judged after the step's paragraph filtering (English stop words: none left)
    assert item["document"]["words"] > 200 and item["note"].startswith("judged after the step's own paragraph filtering: 0 of")
    assert item["metric"]["value"] < item["metric"]["min"] == 10
    assert item["settings"]["text_filters.doc.number_words_min"] == 10
    eod = client.get("/api/drops", params={"stage": "final", "level": "paragraph", "reason": "trailing_eod"}).json()
    final = next(s for s in funnel["stages"] if s["stage"] == "final")
    # the count depends on the default extraction (its main-content decision keeps no trailing EOD in the sample)
    n_eod = final["dropped"].get("paragraph", {}).get("trailing_eod", 0)
    assert len(eod["items"]) == n_eod
    assert all(it["settings"] == {"final.remove_trailing_eod": True} for it in eod["items"])
    assert client.get("/api/drops", params={"stage": "nope", "reason": "x"}).status_code == 400


def test_image_and_image_table_drops_with_their_thresholds(tmp_path_factory):
    """obelics-2023 on the sample drops images (too small, not in the WARC) and documents without images."""
    from pipeline.view.drops import sample

    out = str(sample_run(tmp_path_factory.getbasetemp(), "obelics-2023"))
    stages = {s["stage"]: s["dropped"] for s in json.loads(Path(out, "stats.json").read_text())["stages"]}
    [(reason, n)] = stages["image_filters"]["image"].items()
    r = sample(out, "image_filters", "image", reason, limit=10)
    assert len(r["items"]) == n and reason == "image:too_small_height"
    m = r["items"][0]["metric"]
    assert m["name"] == "original_height" and m["value"] < m["min"] == 150
    assert r["items"][0]["image_meta"]["original_height"] == m["value"]
    for reason, n in stages["image_table"]["image"].items():
        items = sample(out, "image_table", "image", reason, limit=10)["items"]
        assert len(items) == n and all(it["image_meta"]["reason"] == reason for it in items)
    docs = sample(out, "text_filters", "document", "number_images", limit=10)["items"]
    assert len(docs) == stages["text_filters"]["document"]["number_images"]
    assert all(it["metric"]["value"] < it["metric"]["min"] for it in docs)


def test_dedup_drops(tmp_path):
    """Two copies of the sample WARC: URL dedup drops the second copy of every page; the sample shows them."""
    from pipeline.run import run
    from pipeline.view.drops import sample

    copy = tmp_path / "copy.warc.gz"
    shutil.copy(sample_warc(), copy)
    out = tmp_path / "twice"
    stats = run("default", out, [str(sample_warc()), str(copy)], overrides=OFFLINE + ["run.use_ray=false"])
    dropped = next(s for s in stats["stages"] if s["stage"] == "dedup.url")["dropped"]["document"]
    assert sum(dropped.values()) == 6
    for reason, n in dropped.items():
        r = sample(str(out), "dedup.url", "document", reason, limit=20)
        assert len(r["items"]) == n and r["folder"].endswith("dedup_url.apply")
        assert r["items"][0]["settings"]["dedup.url.enabled"] is True
        urls = [it["url"] for it in r["items"]]
        assert len(set(urls)) == len(urls)  # one copy of each page


def test_side_by_side_extraction_of_one_page(client, sample_out):
    from obelics.extract import iter_warc_documents

    d = client.get("/api/doc/0").json()
    r = client.get("/api/compare/0").json()
    assert set(r["profiles"]) == {"obelics-2023", "default"}
    for profile, shown in r["profiles"].items():
        [page] = [doc for doc in iter_warc_documents(str(sample_warc()), profile)
                  if doc.general_metadata.get("url") == d["url"]]
        expected = [("image", u) if u is not None else ("text", t) for t, u in zip(page.texts, page.images)
                    if u is not None or t is not None]
        assert [(n["type"], n.get("url") or n.get("text")) for n in shown["nodes"]] == expected, profile
    # a page the run dropped, named by its WARC pointer
    [item] = client.get("/api/drops", params={"stage": "text_filters", "level": "document",
                                              "reason": "number_words"}).json()["items"]
    w = item["document"]["warc"]
    r = client.get("/api/compare", params={"warc_filename": w["warc_filename"], "offset": w["warc_record_offset"],
                                           "length": w["warc_record_length"]}).json()
    assert {p: d["url"] for p, d in r["profiles"].items()} == {p: item["url"] for p in ("obelics-2023", "default")}
    assert all(d["warc"] == w for d in r["profiles"].values())
    assert client.get("/api/compare", params={"warc_filename": "other.warc.gz", "offset": 0, "length": 9}).status_code == 400


def test_run_in_progress(sample_out, tmp_path):
    """Without stats.json and parquet/ (a run still going), the viewer shows the furthest stage and its funnel."""
    out = tmp_path / "running"
    shutil.copytree(sample_out, out)
    shutil.rmtree(out / "parquet")
    (out / "stats.json").unlink()
    for late in sorted((out / "work").iterdir())[6:]:
        shutil.rmtree(late)
    from pipeline.view.runfolder import RunFolder

    view = RunFolder(str(out))
    label, files = view.source()
    assert label == "work/04-dedup_minhash.apply" and len(files) == 1
    assert view.count() == 6 and view.document(0)["nodes"]
    funnel = view.funnel()
    assert not funnel["finished"]
    assert [s["stage"] for s in funnel["stages"]][:3] == ["extract", "url_ban", "text_filters"]
    assert "merge_images" not in [s["stage"] for s in funnel["stages"]]


def test_a_run_on_object_storage(sample_out, tmp_path, monkeypatch):
    """``obelics view s3://...``: the same documents, images (from the bucket's image table), search and drops."""
    from starlette.testclient import TestClient

    from pipeline.view.app import create_app
    from tests.pipeline.s3_server import LoopbackS3

    monkeypatch.chdir(tmp_path)
    local = TestClient(create_app(str(sample_out)))
    with LoopbackS3() as s3:
        s3.make_bucket("runs")
        s3.upload_tree(sample_out, "runs", "sample/")
        with TestClient(create_app("s3://runs/sample")) as c:
            assert c.get("/api/summary").json()["documents"] == 6
            for path in ("/api/docs?start=0&n=10", "/api/doc/2", "/api/funnel"):
                assert c.get(path).json() == local.get(path).json()
            url = next(n["url"] for n in c.get("/api/doc/2").json()["nodes"] if n["type"] == "image")
            from pipeline.view.runfolder import RunFolder

            assert RunFolder("s3://runs/sample").image_table_dir().startswith("s3://runs/sample/work/")
            assert c.get("/api/image", params={"url": url}).content == local.get("/api/image", params={"url": url}).content
            hits = c.get("/api/search", params={"q": "deep field"}).json()["documents"]
            assert [h["index"] for h in hits] == [0]
            q = {"stage": "text_filters", "level": "paragraph", "reason": "stopword_ratio", "limit": 3}
            assert c.get("/api/drops", params=q).json()["items"] == local.get("/api/drops", params=q).json()["items"]
    assert not (tmp_path / "s3:").exists()


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "obelics", "view", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = proc.stdout.readline()
    m = re.search(r"http://(\S+):(\d+)/", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no address announced: {line!r}{proc.stdout.read()}")
    return proc, m.group(1)


def _listening(pid: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}


def test_binds_to_loopback_unless_told_otherwise(sample_out):
    proc, host = _serve(str(sample_out), "--port", "0")
    try:
        assert host == "127.0.0.1" and _listening(proc.pid) == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(10)
    proc, host = _serve(str(sample_out), "--port", "0", "--host", "0.0.0.0")
    try:
        assert _listening(proc.pid) == {"0.0.0.0"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_user_errors_are_one_line(tmp_path):
    for args in ([str(tmp_path / "missing")], [str(tmp_path)]):
        r = subprocess.run([sys.executable, "-m", "obelics", "view", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- a million documents ------------------------------------------------------------------------------------
def synthetic_run(out: Path, files: int = 10, per_file: int = 100_000, group: int = 1000) -> int:
    """A finished run of ``files * per_file`` documents (the Hub columns), written column-wise."""
    import numpy as np
    import pyarrow.compute as pc

    (out / "parquet").mkdir(parents=True)
    (out / "stats.json").write_text(json.dumps({"stages": [], "summary": {}}))
    (out / "run.json").write_text(json.dumps({"profile": "default", "inputs": []}))
    words = pa.array([f"word{k % 997} text of document" for k in range(997)])
    for f in range(files):
        ids = np.arange(f * per_file, (f + 1) * per_file)
        ids_s = pc.cast(pa.array(ids), pa.string())
        body = pc.binary_join_element_wise(pa.array(np.full(per_file, "document number")), ids_s,
                                           pc.take(words, pa.array(ids % 997)), " ")
        urls = pc.binary_join_element_wise(pa.array(np.full(per_file, "https://site")), pc.cast(pa.array(ids % 5000), pa.string()),
                                           pa.array(np.full(per_file, ".example/page/")), ids_s, "")
        gm = pc.binary_join_element_wise(pa.array(np.full(per_file, '{"url": "')), urls,
                                         pa.array(np.full(per_file, '", "warc_filename": "x.warc.gz"}')), "")
        offsets = pa.array(np.arange(0, 2 * per_file + 1, 2, dtype=np.int32))
        img = pc.binary_join_element_wise(pa.array(np.full(per_file, "https://img.example/")), ids_s, ".jpg", "")
        texts = pa.ListArray.from_arrays(offsets, _interleave(body, pa.nulls(per_file, pa.string())))
        images = pa.ListArray.from_arrays(offsets, _interleave(pa.nulls(per_file, pa.string()), img))
        meta = pa.array(np.full(per_file, '[null, {"original_width": 640, "original_height": 480}]'))
        table = pa.table({"images": images, "metadata": meta, "general_metadata": gm, "texts": texts})
        pq.write_table(table, out / "parquet" / f"train-{f:05d}-of-{files:05d}.parquet", row_group_size=group)
    return files * per_file


def _interleave(a: pa.Array, b: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    n = len(a)
    both = pa.concat_arrays([a.cast(pa.string()), b.cast(pa.string())])
    order = pa.array([k for i in range(n) for k in (i, n + i)])
    return pc.take(both, order)


PAGING = """
import json, sys
import psutil, pyarrow as pa
from starlette.testclient import TestClient
from pipeline.view.app import create_app

out, total = sys.argv[1], int(sys.argv[2])
proc = psutil.Process()
with TestClient(create_app(out)) as c:
    def visit(k):
        start = (k * 7919 * 61) % (total - 100)  # spread over every file and row group
        page = c.get(f"/api/docs?start={start}&n=50").json()
        assert page["total"] == total and page["documents"][0]["index"] == start, page
        assert page["documents"][0]["url"].endswith(f"/page/{start}")
        doc = c.get(f"/api/doc/{(start + 25) % total}").json()
        assert [n["type"] for n in doc["nodes"]] == ["text", "image"]
        if k % 20 == 0:  # a bounded search from there (20,000 rows at most)
            hits = c.get("/api/search", params={"q": f"page/{start + 3}", "field": "url", "start": start}).json()
            assert hits["documents"][0]["index"] == start + 3, hits
    for k in range(40):  # warm up: footers cached, allocator settled
        visit(k)
    rss_warm = proc.memory_info().rss
    for k in range(40, 440):  # 400 more pages and documents all over the run, 20 searches
        visit(k)
    rss_end = proc.memory_info().rss
print(json.dumps({"rss_warm": rss_warm, "rss_end": rss_end, "arrow_peak": pa.default_memory_pool().max_memory()}))
"""


def test_a_million_documents_page_with_flat_memory(tmp_path):
    """Paging, jumping, searching and opening documents anywhere in 1,000,000 documents (a fresh process):
    Arrow's peak memory stays a small fraction of one shard, and the resident memory does not grow with
    the pages read."""
    out = tmp_path / "million"
    total = synthetic_run(out)
    r = subprocess.run([sys.executable, "-c", PAGING, str(out), str(total)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    md = pq.ParquetFile(next((out / "parquet").iterdir())).metadata
    shard = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))  # one shard, decoded
    print(f"1M documents: one shard decoded {shard / 1e6:.1f} MB; Arrow peak {m['arrow_peak'] / 1e6:.2f} MB; "
          f"RSS after warm-up {m['rss_warm'] / 1e6:.0f} MB, after 400 more pages {m['rss_end'] / 1e6:.0f} MB")
    assert m["arrow_peak"] < shard / 4       # a few row groups (each 1/100 of a shard), never a whole shard
    assert m["rss_end"] - m["rss_warm"] < 30e6  # flat: more pages read, no more memory held
