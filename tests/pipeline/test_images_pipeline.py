"""My part of a run, offline, end to end: WARC page + its image records -> image table -> merge ->
shard outputs -> funnel report -> dry-run publish folder that `datasets` loads."""

from __future__ import annotations

import hashlib
import json

import pytest

from filters.base import FilterStats
from obelics.config import load_profile
from obelics.document import documents_to_table
from pipeline.images.config import ImagesConfig
from pipeline.images.merge import STAGE, merge_table
from pipeline.images.stage import image_table
from pipeline.writers.base import write_outputs
from pipeline.writers.config import OutputConfig
from pipeline.writers.webdataset import read_sample


def test_offline_run_of_the_mona_lisa_page(shared, tmp_path):
    import datasets
    import webdataset as wds

    import obelics
    from pipeline.publish import publish
    from pipeline.report import build_report
    from pipeline.report.funnel import add_flow, document_distributions

    warc = str(shared("data", "warc", "ukwa__wikipedia-mona-lisa.warc.gz"))
    docs = documents_to_table(list(obelics.iter_warc_documents(warc)))
    assert docs.num_rows >= 1 and sum(1 for lst in docs.column("images").to_pylist() for u in lst if u) >= 5
    cfg = load_profile("default", ["images.source=warc"]).section("images", ImagesConfig)
    table = image_table([docs], tmp_path / "work", cfg, warcs=[warc])
    stats = FilterStats(STAGE)
    merged = merge_table(docs, table, stats, with_bytes=False)  # stages may carry no bytes
    add_flow(stats, docs.to_pylist(), merged.to_pylist())
    d = stats.as_dict()
    assert d["out"]["image"] >= 5 and d["in"]["word"] == d["out"]["word"] > 0
    outputs = write_outputs(merged, str(tmp_path / "out"), OutputConfig(), merged.num_rows, images=table)
    assert [o["format"] for o in outputs] == ["parquet", "webdataset"]
    assert outputs[1]["images"] == d["out"]["image"] and outputs[1]["images_without_bytes"] == 0
    for s in wds.WebDataset(str(tmp_path / "out" / "webdataset" / "shard-00000.tar"), shardshuffle=False):
        doc, blobs = read_sample(s)
        meta = json.loads(doc["metadata"])
        for pos, v in enumerate(blobs):
            if v is not None:
                assert hashlib.sha256(v).hexdigest() == meta[pos]["sha256"]
    shard_stats = {"stages": [d], "outputs": outputs, "distributions": document_distributions(merged.to_pylist())}
    (tmp_path / "out" / "shards").mkdir()
    (tmp_path / "out" / "shards" / "stats.json").write_text(json.dumps(shard_stats))
    merged_stats = build_report(tmp_path / "out", profile="default")
    assert merged_stats["stages"][0]["stage"] == STAGE
    folder = publish(tmp_path / "out", "org/mona-lisa", dry_run=True, profile="default")
    ds = datasets.load_dataset(str(folder), split="train")
    assert ds.num_rows == docs.num_rows


def test_warc_source_needs_warcs(tmp_path):
    with pytest.raises(ValueError):
        image_table([["http://x/a.jpg"]], tmp_path, ImagesConfig(source="warc"))
