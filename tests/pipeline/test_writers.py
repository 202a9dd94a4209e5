"""Writers: Hub-feature Parquet (optionally with image bytes) and WebDataset shards, atomic with stats;
``output.formats`` choosing them."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from obelics.document import HUB_SCHEMA, WebDocument, documents_to_table
from pipeline.images.config import ImagesConfig
from pipeline.images.loopback import skimage_photos
from pipeline.images.merge import merge_table
from pipeline.images.table import make_row
from pipeline.writers.base import Writer, write_outputs
from pipeline.writers.config import OutputConfig
from pipeline.writers.parquet_hub import write_parquet_shard
from pipeline.writers.webdataset import document_sample, write_webdataset

PHOTOS = skimage_photos(("astronaut.png", "rocket.jpg", "horse.png", "no_time_for_that_tiny.gif"))


def merged_docs(n_docs: int = 5) -> pa.Table:
    """Documents whose image nodes point at the photos, merged with an in-memory image table."""
    cfg = ImagesConfig()
    names = sorted(PHOTOS)
    lookup = {f"http://img/{n}": make_row(f"http://img/{n}", PHOTOS[n], cfg) for n in names}
    docs = []
    for k in range(n_docs):
        texts, images, meta = [f"Paragraph {k} with a few words."], [None], [None]
        for j in range(k % 3 + 1):
            u = f"http://img/{names[(k + j) % len(names)]}"
            texts += [None, "More words."]
            images += [u, None]
            meta += [{"src": u}, None]
        docs.append(WebDocument(texts=texts, images=images, metadata=meta,
                                general_metadata={"url": f"http://site/{k}", "warc_filename": "f.warc.gz",
                                                  "warc_record_offset": k, "warc_record_length": 1}))
    return merge_table(documents_to_table(docs), lookup)


def test_parquet_has_exactly_the_hub_features(tmp_path):
    import datasets

    table = merged_docs()
    path = tmp_path / "parquet" / "shard-00000.parquet"
    stats = write_parquet_shard(table, path)
    assert pq.read_schema(path).remove_metadata().equals(HUB_SCHEMA)
    assert stats["documents"] == 5 and stats["images"] == 1 + 2 + 3 + 1 + 2
    assert json.loads((tmp_path / "parquet" / "shard-00000.stats.json").read_text())["documents"] == 5
    assert {p.name for p in (tmp_path / "parquet").iterdir()} == {"shard-00000.parquet", "shard-00000.stats.json"}
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds.features == datasets.Features({"images": datasets.List(datasets.Value("string")),
                                             "metadata": datasets.Value("string"),
                                             "general_metadata": datasets.Value("string"),
                                             "texts": datasets.List(datasets.Value("string"))})
    row = ds[0]
    WebDocument.from_row(row).check()
    assert json.loads(row["metadata"])[1]["format"] in ("png", "jpeg", "gif")


def test_parquet_with_embedded_images_loads_as_a_sequence_of_images(tmp_path):
    import datasets
    from PIL import Image

    table = merged_docs()
    path = tmp_path / "p.parquet"
    stats = write_parquet_shard(table, path, embed_images=True)
    assert stats["images_with_bytes"] == stats["images"] == 9
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == table.num_rows
    assert ds.features["embedded_images"] == datasets.Sequence(datasets.Image())
    assert [r["texts"] for r in ds] == table.column("texts").to_pylist()  # every document once, in order
    src = table.to_pylist()
    for k in range(ds.num_rows):
        row = ds[k]
        meta = json.loads(row["metadata"])
        assert len(row["embedded_images"]) == len(row["texts"])
        for pos, im in enumerate(row["embedded_images"]):
            assert (im is None) == (row["images"][pos] is None)
            if im is not None:
                assert isinstance(im, Image.Image) and im.size == (meta[pos]["original_width"],
                                                                  meta[pos]["original_height"])
    raw = ds.cast_column("embedded_images", datasets.Sequence(datasets.Image(decode=False)))
    for k, row in enumerate(raw):
        for pos, im in enumerate(row["embedded_images"]):
            if im is not None:  # the original bytes, intact
                assert im["bytes"] == src[k]["image_bytes"][pos]
                assert hashlib.sha256(im["bytes"]).hexdigest() == json.loads(row["metadata"])[pos]["sha256"]


def test_embedded_images_are_off_by_default(tmp_path):
    assert OutputConfig().embed_images is False
    out = write_outputs(merged_docs(2), str(tmp_path), OutputConfig(formats=["parquet"]), shard_docs=2)
    assert pq.read_schema(tmp_path / "parquet" / out[0]["file"]).names == HUB_SCHEMA.names


def test_webdataset_layout_and_read_back(tmp_path):
    import webdataset as wds

    from pipeline.writers.webdataset import read_sample

    table = merged_docs(7)
    stats = write_webdataset(table, tmp_path, prefix="run0", max_count=3)
    assert [s["documents"] for s in stats] == [3, 3, 1]
    tars = sorted(tmp_path.glob("*.tar"))
    assert [t.name for t in tars] == ["run0-00000.tar", "run0-00001.tar", "run0-00002.tar"]
    assert all((tmp_path / f"run0-0000{i}.stats.json").exists() for i in range(3))
    hub = {r["doc_id"]: r for r in table.to_pylist()}
    n = 0
    for s in wds.WebDataset([str(t) for t in tars], shardshuffle=False):
        assert set(s) - {"__key__", "__url__", "__local_path__"} == {"json", "images.mp"}  # the same members
        doc, blobs = read_sample(s)
        assert s["__key__"] == doc["doc_id"] and doc["doc_id"] in hub
        src = hub[doc["doc_id"]]
        assert doc["texts"] == src["texts"] and doc["images"] == src["images"]
        assert doc["metadata"] == src["metadata"] and doc["general_metadata"] == src["general_metadata"]
        assert blobs == src["image_bytes"]  # original bytes at image nodes, null at text nodes
        n += 1
    assert n == 7


def test_webdataset_shards_load_with_datasets(tmp_path):
    """``load_dataset("webdataset")`` on the shards: each document once, images as bytes (or decoded)."""
    import datasets
    from PIL import Image

    from pipeline.writers.webdataset import webdataset_features

    table = merged_docs(12)
    write_webdataset(table, tmp_path / "wds", max_count=5)
    files = str(tmp_path / "wds" / "*.tar")
    ds = datasets.load_dataset("webdataset", data_files=files, split="train", cache_dir=str(tmp_path / "c"))
    src = table.to_pylist()
    assert ds.num_rows == len(src)
    assert sorted(r["json"]["doc_id"] for r in ds) == sorted(r["doc_id"] for r in src)
    by_id = {r["doc_id"]: r for r in src}
    for row in ds:
        want = by_id[row["json"]["doc_id"]]
        assert row["json"]["texts"] == want["texts"] and row["json"]["images"] == want["images"]
        assert row["images.mp"] == want["image_bytes"]
    decoded = datasets.load_dataset("webdataset", data_files=files, split="train", features=webdataset_features(),
                                    cache_dir=str(tmp_path / "d"))
    first = decoded[0]
    ims = [im for im in first["images.mp"] if im is not None]
    assert ims and all(isinstance(im, Image.Image) for im in ims)
    assert len(ims) == sum(1 for u in by_id[first["json"]["doc_id"]]["images"] if u)


def test_webdataset_rotates_by_bytes_and_rejects_bad_keys(tmp_path):
    table = merged_docs(4)
    stats = write_webdataset(table, tmp_path / "b", max_bytes=1)  # every document alone in its shard
    assert [s["documents"] for s in stats] == [1, 1, 1, 1]
    row = table.to_pylist()[0]
    row["doc_id"] = "a.b"
    with pytest.raises(ValueError):
        document_sample(row)


def test_failed_write_leaves_nothing(tmp_path):
    from pipeline.writers.webdataset import WebDatasetWriter

    table = merged_docs(2)
    with pytest.raises(RuntimeError):
        with WebDatasetWriter(tmp_path) as w:
            w.write_table(table)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_bytes_filled_back_from_the_image_table(tmp_path):
    from pipeline.images.merge import fill_image_bytes
    from pipeline.images.table import ImageTable, rows_to_table

    cfg = ImagesConfig()
    table = ImageTable(tmp_path / "t")
    table.write_part("x", rows_to_table(make_row(f"http://img/{n}", PHOTOS[n], cfg) for n in PHOTOS))
    docs = merged_docs(3)
    light = docs.drop_columns(["image_bytes"])  # what stages between merge and writers may carry
    filled = fill_image_bytes(light, table)
    assert filled.column("image_bytes").to_pylist() == docs.column("image_bytes").to_pylist()
    stats = write_webdataset(filled, tmp_path / "w")
    assert stats[0]["images_without_bytes"] == 0 and stats[0]["images"] == 1 + 2 + 3


class FailingWriter(Writer):
    """A format that fails on the second shard (to check that the others are aborted)."""

    format = "failing"

    def open(self, dest, shards):
        self.n = 0

    def write(self, part):
        self.n += 1
        if self.n == 2:
            raise RuntimeError("disk full")

    def close(self):
        return []


def test_formats_choose_the_writers(tmp_path):
    table = merged_docs(5)
    out = write_outputs(table, str(tmp_path / "a"), OutputConfig(webdataset_max_count=2), shard_docs=2)
    assert [(o["format"], o["file"], o["documents"]) for o in out] == [
        ("parquet", "train-00000-of-00003.parquet", 2), ("parquet", "train-00001-of-00003.parquet", 2),
        ("parquet", "train-00002-of-00003.parquet", 1),
        ("webdataset", "shard-00000.tar", 2), ("webdataset", "shard-00001.tar", 2), ("webdataset", "shard-00002.tar", 1)]
    only = write_outputs(table, str(tmp_path / "b"), OutputConfig(formats=["webdataset"]), shard_docs=2)
    assert [o["format"] for o in only] == ["webdataset"] and sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "webdataset"]


def test_a_bad_format_fails_at_load():
    from obelics.config import ConfigError, Profile

    for value, why in ((["parquet", "csv"], "unknown format 'csv'"), (["parquet", "parquet"], "listed twice"),
                       (["pipeline.writers.base:BUILTIN"], "not a pipeline.writers.base.Writer"),
                       (["no.such.module:W"], "cannot load")):
        with pytest.raises(ConfigError, match=why):
            Profile("p", {"output": {"formats": value}}).section("output", OutputConfig)


def test_a_failing_writer_aborts_the_others(tmp_path):
    cfg = OutputConfig(formats=["webdataset", "tests.pipeline.test_writers:FailingWriter"])
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(merged_docs(4), str(tmp_path), cfg, shard_docs=2)
    assert [p.name for p in (tmp_path / "webdataset").iterdir()] == []  # the open tar was dropped, not renamed


def test_the_example_jsonl_format_in_a_sample_run(tmp_path):
    """``examples/add_output_format``: a writer of one's own, named in ``output.formats``, runs beside the
    built-in ones in a whole (offline) sample run."""
    from pipeline.run import run
    from tests.conftest import ROOT
    from tests.pipeline.test_run import OFFLINE, sample_warc

    out = tmp_path / "out"
    profile = ROOT / "examples" / "add_output_format" / "jsonl.yaml"
    stats = run(str(profile), out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert [o["format"] for o in stats["outputs"]] == ["parquet", "webdataset", "jsonl"]
    lines = [json.loads(line) for line in (out / "jsonl" / "train-00000.jsonl").read_text().splitlines()]
    rows = [r for p in sorted((out / "parquet").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(lines) == len(rows) == stats["summary"]["documents"] >= 4
    for line, row in zip(lines, rows):
        assert line["texts"] == row["texts"] and line["images"] == row["images"]
        assert line["general_metadata"] == json.loads(row["general_metadata"])
    assert json.loads((out / "jsonl" / "train-00000.stats.json").read_text())["documents"] == len(lines)
