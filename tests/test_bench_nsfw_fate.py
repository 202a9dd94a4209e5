"""bench.nsfw_fate: the pairs NSFW was given followed through a run folder's stage outputs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from bench.nsfw_fate import fate


def _docs(path, docs: dict[str, list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"general_metadata": [json.dumps({"url": u}) for u in docs],
                             "images": list(docs.values())}), path)


def test_fate_follows_each_pair_to_the_stage_that_drops_it(tmp_path):
    work = tmp_path / "work"
    _docs(work / "06-merge_images+image_filters+optout+nsfw+doc_filters" / "u0.parquet",
          {"d1": ["a", None, "b"], "d3": ["e"]})  # d2 dropped by doc_filters
    _docs(work / "08-dedup_image_urls.apply" / "u0.parquet", {"d1": ["a", None], "d3": ["e"]})  # b: frequent URL
    _docs(work / "10-dedup_paragraphs.apply" / "u0.parquet", {"d1": ["a"], "d3": ["e"]})
    _docs(work / "12-dedup_image_sets.apply+recheck+final" / "u0.parquet", {"d1": ["a"]})  # d3: same image set
    _docs(tmp_path / "parquet" / "train-00000-of-00001.parquet", {"d1": ["a"]})
    stats = {"read": {"html_records": 10},
             "cpu": {"stages": [{"stage": "06", "ops": [{"op": "nsfw", "cpu_seconds": 0.03}]}]},
             "stages": [{"stage": "image_filters", "dropped": {"image": {"image:too_small_width": 3}}},
                        {"stage": "nsfw", "in": {"image": 4}, "dropped": {}},
                        {"stage": "doc_filters", "dropped": {"document": {"number_images": 1}}},
                        {"stage": "dedup.image_url.decide", "dropped": {"image": {"frequent": 1}}},
                        {"stage": "dedup.image_url", "dropped": {"image": {"frequent": 1}}}]}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    rec = {"pairs": [("d1", "a"), ("d1", "b"), ("d2", "c"), ("d3", "e")],
           "key_of": {"a": b"k1", "b": b"k1", "c": b"k2", "e": b"k3"},  # a and b: the same picture
           "scored": [b"k1", b"k2", b"k3"]}
    r = fate(rec, tmp_path)
    assert [n for _, n in r["levels"]] == [4, 3, 2, 2, 1, 1]
    assert (r["pairs_given"], r["pairs_kept"]) == (4, 1)
    assert (r["contents_scored"], r["contents_kept"]) == (3, 1)  # k1 reaches the dataset through a
    assert r["later_drops"] == [("doc_filters", "document", "number_images", 1),
                                ("dedup.image_url", "image", "frequent", 1)]
    assert r["nsfw_cpu_s"] == 0.03 and r["pages"] == 10 and r["nsfw_images_in"] == 4
