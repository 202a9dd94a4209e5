"""The frequent-image-URL decision routed back to the files (pipeline.dedup.frequent_image_urls): each unit
gets the hashes of the too-frequent URLs that occur in it, the result equals the pure in-memory pass, and
what reaches the driver does not grow with the number of frequent URLs."""

import pyarrow.parquet as pq
import pytest

from filters.dedup.common import hash64
from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from tests.filters.dedup_helpers import make_doc
from tests.pipeline.recording_backend import RecordingBackend
from tests.pipeline.test_dedup_ray import _concat, _write_units


def _docs(n_frequent: int):
    """Documents whose images are drawn from ``n_frequent`` URLs seen on 5 pages each (one of them twice on
    a page) and from URLs seen once."""
    docs = []
    for k in range(5 * n_frequent):
        imgs = [f"https://logo/{k % n_frequent}.png", f"https://img/{k}.jpg"]
        if k % 7 == 0:
            imgs.append(f"https://logo/{k % n_frequent}.png")
        docs.append(make_doc(f"https://s{k}.org/p", imgs, texts=[f"page {k}"], doc_id=f"d{k:04d}"))
    return docs


@pytest.mark.parametrize("count", ["documents", "occurrences"])
def test_routed_frequent_image_urls_equal_the_in_memory_pass(count, tmp_path):
    from pipeline.dedup import decision_table, dedup_units
    from pipeline.shuffle import LocalBackend

    cfg = dedup_config("default", [f"dedup.image_url.count={count}", "dedup.image_url.max_count=4",
                                   "dedup.num_partitions=3"])
    docs = _docs(12)
    expected, want_stats = run_passes(docs, cfg, ["image_url"])
    units = _write_units(docs, tmp_path / "in", 4)
    last, decisions, stats = dedup_units(tmp_path / "in", units, cfg, tmp_path / "work", passes=["image_url"],
                                         ctx={"backend": LocalBackend()})
    got = _concat(last, units)
    want = expected.table.sort_by("doc_id")
    for col in ("doc_id", "texts", "images", "metadata"):
        assert got[col].to_pylist() == want[col].to_pylist()
    assert stats[0].as_dict()["dropped"] == want_stats[0].as_dict()["dropped"]
    assert decisions[0]["stats"][0]["in"] == {"frequent_image_url": 12}
    # each unit's share holds the frequent URLs that occur in it, once
    for i, u in enumerate(units):
        logos = {x for d in docs[i::4] for x in d.images if x and x.startswith("https://logo/")}
        path = tmp_path / "work" / "00-image_url" / "decision" / "units" / f"{u}.parquet"
        assert sorted(pq.read_table(path)["h"].to_numpy().tolist()) == sorted(hash64(sorted(logos)).tolist())
    assert decision_table(decisions[0]).num_rows == sum(
        len({x for d in docs[i::4] for x in d.images if x and "logo" in x}) for i in range(4))


def test_the_driver_holds_nothing_per_frequent_url(tmp_path):
    from pipeline.dedup import decide

    cfg = dedup_config("default", ["dedup.image_url.max_count=4", "dedup.num_partitions=4",
                                   "dedup.docs_per_partition=1000000"])
    seen = {}
    for n in (10, 200):
        units = _write_units(_docs(n), tmp_path / f"in{n}", 4)
        rec = RecordingBackend()
        (tmp_path / f"d{n}").mkdir()
        d = decide("image_url", str(tmp_path / f"in{n}"), units,
                   {"profile": cfg, "decision_dir": str(tmp_path / f"d{n}"), "backend": rec})
        assert d["stats"][0]["in"]["frequent_image_url"] == n
        seen[n] = (max(rec.sizes), len(rec.sizes))
    assert seen[200][1] == seen[10][1]  # the same tasks
    assert seen[200][0] <= seen[10][0] + 64  # no result grows with the frequent URLs (8 bytes each before)
