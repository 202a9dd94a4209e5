"""Image table: probing real photos, failure reasons, lookups, and the offline (WARC) source."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.base import FilterStats
from obelics.document import WebDocument, documents_to_table
from obelics.records import ImageRecord
from pipeline.images.config import ImagesConfig
from pipeline.images.loopback import bomb_png, skimage_photos
from pipeline.images.merge import merge_table
from pipeline.images.offline import disallowed_by_headers, table_from_records
from pipeline.images.table import ImageTable, make_row, probe_bytes, reason_from_error, rows_to_table

PHOTOS = skimage_photos()


@pytest.mark.parametrize("name,fmt", [("astronaut.png", "png"), ("rocket.jpg", "jpeg"),
                                      ("no_time_for_that_tiny.gif", "gif")])
def test_probe_real_photos(name, fmt):
    p = probe_bytes(PHOTOS[name])
    assert (p.format, p.reason) == (fmt, None)
    assert p.width > 10 and p.height > 10


@pytest.mark.parametrize("name", ["astronaut.png", "rocket.jpg", "no_time_for_that_tiny.gif"])
def test_truncated_detected_and_optional(name):
    cut = PHOTOS[name][: len(PHOTOS[name]) // 2]
    assert probe_bytes(cut).reason == "truncated"
    assert probe_bytes(cut, check_truncation=False).reason is None  # obelics-2023 loads truncated images


def test_not_images_and_oversized():
    assert probe_bytes(b"<html><body>hi</body></html>").reason == "not_image"
    assert probe_bytes(b"").reason == "empty"
    assert probe_bytes(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>').reason == "svg"
    assert probe_bytes(bomb_png(20000, 20000), max_pixels=100_000_000).reason == "too_many_pixels"
    cfg = ImagesConfig(max_bytes=1000)
    assert make_row("u", PHOTOS["rocket.jpg"], cfg)["reason"] == "too_large_bytes"


@pytest.mark.parametrize("msg,reason", [
    ("HTTP Error 404: Not Found", "http_404"), ("HTTP Error 500: Internal Server Error", "http_500"),
    ("timed out", "timeout"), ("<urlopen error timed out>", "timeout"),
    ("Use of image disallowed by X-Robots-Tag directive", "optout:x-robots-tag"),
    ("<urlopen error [Errno 111] Connection refused>", "connection_refused"),
    ("<urlopen error [Errno -2] Name or service not known>", "dns"),
    ("Image decoding error", "not_image"), ("something else", "download_error"), (None, "download_error")])
def test_reason_from_error(msg, reason):
    assert reason_from_error(msg) == reason


def test_success_row_keeps_original_bytes():
    data = PHOTOS["chelsea.png"]
    row = make_row("http://x/c.png", data, ImagesConfig(), headers={"content-type": "image/png"})
    assert row["status"] == "success" and row["bytes"] is data
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert (row["format"], row["width"], row["height"]) == ("png", 451, 300)


def test_table_parts_and_lookup(tmp_path):
    cfg = ImagesConfig()
    t = ImageTable(tmp_path / "table")
    t.write_part("a", rows_to_table([make_row("http://a/1.jpg", PHOTOS["rocket.jpg"], cfg),
                                     make_row("http://a/2.jpg", None, cfg, error="HTTP Error 404: Not Found")]))
    t.write_part("b", rows_to_table([make_row("http://b/1.png", PHOTOS["horse.png"], cfg)]))
    assert not list((tmp_path / "table").glob(".*tmp"))
    hits = t.lookup(["http://a/1.jpg", "http://a/2.jpg", "http://b/1.png", "http://zzz"])
    assert set(hits) == {"http://a/1.jpg", "http://a/2.jpg", "http://b/1.png"}
    assert hits["http://b/1.png"]["bytes"] == PHOTOS["horse.png"]
    assert hits["http://a/2.jpg"]["reason"] == "http_404"
    assert t.lookup(["http://a/1.jpg"], with_bytes=False)["http://a/1.jpg"].get("bytes") is None
    assert t.counts() == {"success": 2, "http_404": 1}


def test_disallowed_by_headers_matches_img2dataset_rule(monkeypatch):
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    from email.message import Message

    from img2dataset.downloader import is_disallowed

    cases = ["noai", "noimageai, nofollow", "otherbot: noai", "obelics-toolkit: noindex", "nofollow"]
    directives = ["noai", "noimageai", "noindex", "noimageindex"]
    for value in cases:
        m = Message()
        m["X-Robots-Tag"] = value
        expected = is_disallowed(m, "obelics-toolkit", set(directives))
        assert disallowed_by_headers({"X-Robots-Tag": value}, "obelics-toolkit", directives) == expected, value


def _record(url, data, status=200, headers=None):
    return ImageRecord(url=url, payload=data, content_type="image/jpeg", http_status=status,
                       http_headers=headers or {})


def test_offline_records_give_the_same_rows_as_a_download():
    cfg = ImagesConfig()
    recs = [_record("http://w/ok.jpg", PHOTOS["rocket.jpg"]),
            _record("http://w/missing.jpg", b"", status=404),
            _record("http://w/noai.jpg", PHOTOS["rocket.jpg"], headers={"X-Robots-Tag": "noai"}),
            _record("http://w/tdm.jpg", PHOTOS["rocket.jpg"], headers={"TDM-Reservation": "1"}),
            _record("http://w/cut.jpg", PHOTOS["rocket.jpg"][:5000])]
    rows = {r["url"]: r for r in table_from_records(recs, cfg).to_pylist()}
    assert rows["http://w/ok.jpg"]["status"] == "success" and rows["http://w/ok.jpg"]["source"] == "warc"
    assert rows["http://w/ok.jpg"]["bytes"] == PHOTOS["rocket.jpg"]
    assert rows["http://w/missing.jpg"]["reason"] == "http_404"
    assert rows["http://w/noai.jpg"]["reason"] == "optout:x-robots-tag"
    assert rows["http://w/tdm.jpg"]["status"] == "success"
    assert '"tdm-reservation": "1"' in rows["http://w/tdm.jpg"]["headers"]
    assert rows["http://w/cut.jpg"]["reason"] == "truncated"


def test_offline_reencode_like_the_original():
    cfg = ImagesConfig(reencode=True, check_truncation=False, max_pixels=None, max_bytes=None)
    rows = table_from_records([_record("http://w/a.png", PHOTOS["chelsea.png"])], cfg).to_pylist()
    assert rows[0]["status"] == "success" and rows[0]["format"] == "jpeg"
    assert (rows[0]["width"], rows[0]["height"]) == (451, 300)


def _doc(urls, page="http://p/page.html"):
    texts, images, meta = ["intro text here"], [None], [None]
    for u in urls:
        texts += [None, "a paragraph"]
        images += [u, None]
        meta += [{"src": u, "alt_text": "x"}, None]
    return WebDocument(texts=texts, images=images, metadata=meta, general_metadata={"url": page})


def test_merge_removes_failed_and_counts_reasons(tmp_path):
    cfg = ImagesConfig()
    t = ImageTable(tmp_path / "t")
    t.write_part("x", rows_to_table([make_row("http://w/ok.jpg", PHOTOS["rocket.jpg"], cfg),
                                     make_row("http://w/404.jpg", None, cfg, error="HTTP Error 404: Not Found")]))
    docs = documents_to_table([_doc(["http://w/ok.jpg", "http://w/404.jpg", "http://w/never.jpg"])])
    stats = FilterStats("images.merge")
    out = merge_table(docs, t, stats).to_pylist()[0]
    assert [i for i in out["images"] if i] == ["http://w/ok.jpg"]
    assert len(out["texts"]) == len(out["images"]) == len(out["image_bytes"]) == 5
    pos = out["images"].index("http://w/ok.jpg")
    assert out["image_bytes"][pos] == PHOTOS["rocket.jpg"]
    import json

    m = json.loads(out["metadata"])[pos]
    assert m["original_width"] == 640 and m["format"] == "jpeg" and m["alt_text"] == "x"
    assert m["sha256"] == hashlib.sha256(PHOTOS["rocket.jpg"]).hexdigest()
    WebDocument.from_row(out).check()
    d = stats.as_dict()
    assert d["in"] == {"document": 1, "image": 3} and d["out"] == {"document": 1, "image": 1}
    assert d["dropped"]["image"] == {"http_404": 1, "not_downloaded": 1}


def test_mona_lisa_warc_serves_as_the_web(shared, tmp_path):
    pytest.importorskip("obelics.warc")
    from obelics.warc import iter_image_records
    from pipeline.images.offline import warc_image_table

    warc = shared("data", "warc", "ukwa__wikipedia-mona-lisa.warc.gz")
    recs = list(iter_image_records(str(warc)))
    assert len(recs) == 22
    table = warc_image_table([str(warc)], tmp_path / "table", ImagesConfig(),
                             wanted=[r.url for r in recs] + ["http://not/in/the/warc.jpg"])
    counts = table.counts()
    assert counts["not_in_warc"] == 1
    assert counts["success"] >= 20  # every real image record of the page decodes
    ref = shared("data", "images", "warc_monalisa__170px-Mona_Lisa_detail_background_right.jpg").read_bytes()
    url = next(r.url for r in recs if r.url.endswith("170px-Mona_Lisa_detail_background_right.jpg"))
    assert table.lookup([url])[url]["sha256"] == hashlib.sha256(ref).hexdigest()


def test_images_command_offline_with_merge(shared, tmp_path, capsys):
    pytest.importorskip("obelics.warc")
    import pyarrow.parquet as pq

    from obelics.cli import main
    from obelics.parquet import write_documents
    from obelics.warc import iter_image_records

    warc = shared("data", "warc", "ukwa__wikipedia-mona-lisa.warc.gz")
    urls = [r.url for r in iter_image_records(str(warc))][:6] + ["http://elsewhere/x.jpg"]
    write_documents(tmp_path / "docs.parquet", [_doc(urls[:4], "http://p/1"), _doc(urls[4:], "http://p/2")])
    rc = main(["images", str(tmp_path / "docs.parquet"), "--work", str(tmp_path / "w"), "--warc", str(warc),
               "--merged", str(tmp_path / "merged.parquet")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["urls"] == 7 and summary["by_reason"]["not_in_warc"] == 1
    assert summary["merge"]["dropped"]["image"]["not_in_warc"] == 1
    merged = pq.read_table(tmp_path / "merged.parquet")
    assert sum(1 for lst in merged.column("images").to_pylist() for u in lst if u) == summary["merge"]["out"]["image"]


def test_embedded_sample_warc_holds_every_image_its_pages_use(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "build" / "sample" / "sample.warc.gz"
    if not sample.exists():
        pytest.skip("build/sample/sample.warc.gz not built (make sample)")
    import obelics
    from obelics.document import documents_to_table
    from pipeline.images.download import unique_urls
    from pipeline.images.offline import warc_image_table

    docs = list(obelics.iter_warc_documents(str(sample)))
    urls = unique_urls([documents_to_table(docs)])
    assert urls
    counts = warc_image_table([str(sample)], tmp_path / "t", ImagesConfig(), wanted=urls).counts()
    assert counts.get("not_in_warc", 0) == 0
    assert counts["success"] == len(urls)


def test_headers_by_url_for_the_optout_filter(tmp_path):
    cfg = ImagesConfig()
    t = ImageTable(tmp_path / "t")
    t.write_part("x", rows_to_table([
        make_row("http://w/a.jpg", PHOTOS["rocket.jpg"], cfg, headers={"tdm-reservation": "1"}),
        make_row("http://w/b.jpg", PHOTOS["rocket.jpg"], cfg)]))
    assert t.headers_by_url(["http://w/a.jpg", "http://w/b.jpg"]) == {"http://w/a.jpg": {"tdm-reservation": "1"}}


def _img2dataset_shard(work, photos):
    """An img2dataset shard written by its own ParquetSampleWriter (kept by the worker's wrapper), its
    header log beside it: successes, a redirect, a 404, a truncated body; written out of URL order."""
    import pyarrow as pa
    from img2dataset.writer import ParquetSampleWriter

    from pipeline.images.i2d_worker import _keeping
    from pipeline.images.parts import HEADERS_DIR, I2D_DIR

    folder = work / I2D_DIR
    (folder / HEADERS_DIR).mkdir(parents=True)
    schema = pa.schema([("url", pa.string()), ("key", pa.string()), ("status", pa.string()),
                        ("error_message", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                        ("original_width", pa.int32()), ("original_height", pa.int32()), ("sha256", pa.string())])
    rocket = photos["rocket.jpg"]
    out = [("http://h/z.png", photos["astronaut.png"], None), ("http://h/a.jpg", rocket, None),
           ("http://h/gone", None, "HTTP Error 404: Not Found"), ("http://h/m.gif", photos["no_time_for_that_tiny.gif"], None),
           ("http://h/cut.jpg", rocket[: len(rocket) // 2], None), ("http://h/r", photos["chelsea.png"], None)]
    log = [{"url": "http://h/r", "status": 302, "headers": {}, "location": "/final.png"},
           {"url": "http://h/final.png", "status": 200, "headers": {"x-robots-tag": "noindex"}, "location": None},
           {"url": "http://h/gone", "status": 404, "headers": {}, "location": None}]
    (folder / HEADERS_DIR / "00000.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    samples = []
    writer = _keeping(ParquetSampleWriter, samples, "sha256")(0, str(folder), False, 5, schema, "jpg")
    for i, (url, data, err) in enumerate(out):
        meta = {"url": url, "key": f"{i:09d}", "status": "failed_to_download" if err else "success",
                "error_message": err, "width": None, "height": None, "original_width": None, "original_height": None,
                "sha256": hashlib.sha256(data).hexdigest() if data else None}
        writer.write(data, meta["key"], None, meta)
    writer.close()
    return samples


def test_shard_part_from_the_workers_samples_is_the_shard_files_part(tmp_path, monkeypatch):
    """The part a worker writes from the samples it still holds is byte for byte the part read back from
    the shard file (what a resume or the parent writes); samples that do not match the shard are not used."""
    from pipeline.images.i2d_worker import read_header
    from pipeline.images.parts import write_shard_part

    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (img2dataset) asks PyPI otherwise
    photos = skimage_photos()
    samples = _img2dataset_shard(tmp_path, photos)
    assert len(samples) == 6 and samples[1] == ("http://h/a.jpg", "success", None,
                                                hashlib.sha256(photos["rocket.jpg"]).hexdigest(), photos["rocket.jpg"], None)
    cfg = ImagesConfig()
    from_file = open(write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "file")), "rb").read()
    from_memory = open(write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "mem"), samples=samples), "rb").read()
    assert from_memory == from_file
    # with what the download's pixel check read from each body (PIL not opening them again): the same part
    read = [s[:5] + (read_header(s[4]) if s[4] else None,) for s in samples]
    assert read[1][5] == ("jpeg", 640, 427)
    with_read = open(write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "read"), samples=read), "rb").read()
    assert with_read == from_file
    rows = ImageTable(tmp_path / "mem").lookup([s[0] for s in samples])
    assert rows["http://h/a.jpg"]["bytes"] == photos["rocket.jpg"] and rows["http://h/a.jpg"]["status"] == "success"
    assert rows["http://h/cut.jpg"]["reason"] == "truncated" and rows["http://h/cut.jpg"]["bytes"] is None
    assert rows["http://h/gone"]["reason"] == "http_404"
    assert rows["http://h/r"]["final_url"] == "http://h/final.png"
    assert json.loads(rows["http://h/r"]["headers"]) == {"x-robots-tag": "noindex"}
    # a sample list short of the shard (a write failed half-way): refused (the shard is downloaded again)
    with pytest.raises(ValueError, match="6 rows written but 5 samples kept"):
        write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "short"), samples=samples[:-1])
    assert not (tmp_path / "short").exists()
    # the header log's entries from memory (the worker's, before the log file is in place): the same part
    from pipeline.images.parts import read_header_log

    log = read_header_log(tmp_path / "img2dataset" / "00000.parquet")
    assert len(log) == 3
    from_log = open(write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "log"), samples=samples,
                                     log_by_url=log), "rb").read()
    assert from_log == from_file
    # a list of the shard's length is what the worker wrote: its bytes are the ones stored
    swapped = [(u, s, e, h, photos["horse.png"] if u == "http://h/a.jpg" else b, r) for u, s, e, h, b, r in samples]
    write_shard_part(tmp_path, "00000", cfg, str(tmp_path / "swapped"), samples=swapped)
    assert ImageTable(tmp_path / "swapped").lookup(["http://h/a.jpg"])["http://h/a.jpg"]["bytes"] == photos["horse.png"]


def test_a_shard_without_its_bytes_is_not_a_part(tmp_path, monkeypatch):
    """img2dataset's shard as our worker has it written (the bytes kept only for the part): the metadata is
    there, the bytes are not, and building a part from it is refused instead of storing empty images."""
    from img2dataset.writer import ParquetSampleWriter

    from pipeline.images.i2d_worker import _keeping
    from pipeline.images.parts import I2D_DIR, ShardWithoutBytes, write_shard_part

    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    photos = skimage_photos()
    import pyarrow as pa

    folder = tmp_path / I2D_DIR
    folder.mkdir()
    schema = pa.schema([("url", pa.string()), ("key", pa.string()), ("status", pa.string()),
                        ("error_message", pa.string()), ("sha256", pa.string())])
    samples = []
    writer = _keeping(ParquetSampleWriter, samples, "sha256", keep_bytes=False)(0, str(folder), False, 5, schema, "jpg")
    data = photos["rocket.jpg"]
    writer.write(data, "0", None, {"url": "http://h/a.jpg", "key": "0", "status": "success", "error_message": None,
                                   "sha256": hashlib.sha256(data).hexdigest()})
    writer.write(None, "1", None, {"url": "http://h/b", "key": "1", "status": "failed_to_download",
                                   "error_message": "HTTP Error 404: Not Found", "sha256": None})
    writer.close()
    shard = pq.read_table(folder / "00000.parquet")
    assert shard.column("status").to_pylist() == ["success", "failed_to_download"]
    assert shard.column("jpg").to_pylist() == [None, None] and samples[0][4] is data
    with pytest.raises(ShardWithoutBytes):
        write_shard_part(tmp_path, "00000", ImagesConfig(), str(tmp_path / "file"))
    path = write_shard_part(tmp_path, "00000", ImagesConfig(), str(tmp_path / "mem"), samples=samples, log_by_url={})
    assert ImageTable(tmp_path / "mem").lookup(["http://h/a.jpg"])["http://h/a.jpg"]["bytes"] == data and path


def test_binary_column_equals_arrows_own():
    """The hand-made binary column holds what ``pa.array`` would, nulls included, chunked by size."""
    import pyarrow as pa

    from pipeline.images.table import binary_column

    blobs = [b"abc", None, b"", b"\xff\xd8" * 50, None, b"z"]
    col = binary_column(blobs)
    assert col.to_pylist() == blobs and col.null_count == 2 and col.equals(pa.chunked_array([pa.array(blobs, pa.binary())]))
    small = binary_column(blobs, max_chunk=60)  # the 100-byte value gets a chunk of its own
    assert small.to_pylist() == blobs and [len(c) for c in small.chunks] == [3, 1, 2]
    assert binary_column([b"x", b"y"]).chunk(0).buffers()[0] is None  # no validity bitmap without nulls


@pytest.mark.parametrize("rows", [0, 1, 256, 700])
def test_a_part_written_from_blobs_apart_is_the_same_file(tmp_path, rows):
    """write_part(table, blobs): row group by row group through one reused buffer, the same file byte for byte
    as the joined column gives; groups of different sizes (the buffer grows and is written over), failures
    (no bytes) among them; an unsorted table and blobs fall back to the joined column and sort."""
    import random

    from pipeline.images.table import ROW_GROUP

    cfg = ImagesConfig()
    names = sorted(PHOTOS)
    rng = random.Random(rows)
    made = []
    for i in range(rows):
        if i % 7 == 3:
            made.append(make_row(f"http://h/{i:04d}", None, cfg, error="HTTP Error 404: Not Found"))
        else:  # sizes vary from group to group: the buffer grows, and shorter groups write over longer ones
            name = names[rng.randrange(len(names))] if i < ROW_GROUP or i >= 2 * ROW_GROUP else "hubble_deep_field.jpg"
            made.append(make_row(f"http://h/{i:04d}", PHOTOS[name], cfg))
    joined = rows_to_table(made)
    blobs = joined.column("bytes").to_pylist()
    apart = joined.set_column(joined.schema.get_field_index("bytes"), "bytes",
                              pa.nulls(rows, pa.binary()))
    a = ImageTable(tmp_path / "a").write_part("x", joined)
    b = ImageTable(tmp_path / "b").write_part("x", apart, blobs)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert pq.ParquetFile(b).metadata.num_row_groups == max(1, -(-rows // ROW_GROUP))
    if rows > 1:  # reversed rows and blobs: sorted as a whole table would be
        back = list(range(rows))[::-1]
        c = ImageTable(tmp_path / "c").write_part("x", apart.take(back), [blobs[k] for k in back])
        assert pq.read_table(c).equals(pq.read_table(a))
    with pytest.raises(ValueError, match="byte strings"):
        ImageTable(tmp_path / "d").write_part("x", apart, blobs + [b"extra"])


def test_distinct_variants_are_the_same_pictures():
    """The benchmark's distinct bytes per URL: each photo stays a valid image of its format and size."""
    from pipeline.images.loopback import distinct_variant

    for name, photo in skimage_photos().items():
        a, b = distinct_variant(photo, b"i=1"), distinct_variant(photo, b"i=2")
        p, q = probe_bytes(photo), probe_bytes(a)
        assert (q.format, q.width, q.height, q.reason) == (p.format, p.width, p.height, None), name
        assert (a != b) == (p.format in ("png", "jpeg")), name
