"""The Ray passes give the same result as the in-memory passes (small corpus, local Ray, 2 CPUs)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from obelics.document import documents_to_table
from tests.filters.dedup_helpers import make_doc

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    from pipeline.executor import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def _corpus():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(2000)]

    def text(n=120):
        return " ".join(rng.choice(vocab, n).tolist())

    story = text(200)
    docs = []
    for k in range(40):  # an image on 12 pages, a boilerplate paragraph per domain, unique stories
        dom = f"site{k % 4}.com"
        docs.append(make_doc(f"https://{dom}/{k}", ["https://ads/x.gif", f"https://img/{k}.jpg"] if k < 12
                             else [f"https://img/{k}.jpg"], texts=[f"Menu of {dom}\n\n{text()}"],
                             warc=f"CC-MAIN-2022-{k % 3:02d}/w", date=f"2022-0{1 + k % 3}-01", doc_id=f"d{k:02d}"))
    # URL duplicates, a shared image set, near-duplicate texts
    docs.append(make_doc("https://site0.com/0", ["https://img/0.jpg"], texts=["old copy " + text()],
                         warc="CC-MAIN-2020-05/w", date="2020-01-01", doc_id="urlold"))
    docs.append(make_doc("https://news.com/a", ["https://img/s1.jpg", "https://img/s2.jpg"], texts=[text()],
                         warc="CC-MAIN-2021-01/w", date="2021-01-01", doc_id="setold"))
    docs.append(make_doc("https://copy.com/a", ["https://img/s2.jpg", "https://img/s1.jpg"], texts=[text()],
                         warc="CC-MAIN-2023-06/w", date="2023-01-01", doc_id="setnew"))
    docs.append(make_doc("https://n1.com/a", ["https://img/n1.jpg"], texts=[story], date="2021-01-01", doc_id="nearold"))
    docs.append(make_doc("https://n2.com/b", ["https://img/n2.jpg"], texts=[story + " extra words"],
                         date="2023-01-01", doc_id="nearnew"))
    docs.append(make_doc("https://n3.com/c", [], texts=["no image here"], doc_id="noimg"))
    return docs


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_ray_passes_match_in_memory_passes(ray_local, profile, tmp_path):
    from pipeline.dedup import run_global_dedup

    cfg = dedup_config(profile, ["dedup.num_partitions=3", "dedup.image_url.max_count=10"])
    docs = _corpus()
    expected, _ = run_passes(docs, cfg)
    stats = []
    ds = ray.data.from_arrow(documents_to_table(docs)).repartition(4)
    spill = tmp_path / "spill" if profile == "obelics-2023" else None  # object store, or Parquet on disk
    out = run_global_dedup(ds, cfg, stats, removed_dir=tmp_path / "removed", spill_dir=spill)
    got = pa.concat_tables(ray.get(list(out.to_arrow_refs()))).sort_by("doc_id")
    want = expected.table.sort_by("doc_id")
    assert got["doc_id"].to_pylist() == want["doc_id"].to_pylist()
    assert got["texts"].to_pylist() == want["texts"].to_pylist()
    assert got["images"].to_pylist() == want["images"].to_pylist()
    assert got["metadata"].to_pylist() == want["metadata"].to_pylist()
    removed = pq.read_table(tmp_path / "removed").to_pylist()
    assert {r["doc_id"]: r["reason"] for r in removed} == expected.removed_ids()
    assert "urlold" in expected.removed_ids() and "setold" in expected.removed_ids()
    if profile == "default":
        assert expected.removed_ids()["nearold"] == "minhash:near_duplicate"
    by_stage = {s.stage: s for s in stats}
    assert by_stage["dedup.image_url"].dropped["image"]
    assert by_stage["dedup.paragraphs"].dropped["paragraph"]


def test_decide_then_apply_per_unit(ray_local, tmp_path):
    from pipeline.dedup import apply, decide

    cfg_name = "default"
    docs = _corpus()
    prev = tmp_path / "prev"
    prev.mkdir()
    units = ["u0", "u1", "u2"]
    for i, u in enumerate(units):
        pq.write_table(documents_to_table(docs[i::3]), prev / f"{u}.parquet")
    expected, _ = run_passes(docs, dedup_config(cfg_name), ["url", "paragraphs", "image_url"])
    tables = {u: pq.read_table(prev / f"{u}.parquet") for u in units}
    for name in ["url", "paragraphs", "image_url"]:
        ddir = tmp_path / name
        ddir.mkdir()
        for u in units:
            pq.write_table(tables[u], prev / f"{u}.parquet")
        decision = decide(name, prev, units, {"profile": cfg_name, "decision_dir": str(ddir)})
        tables = {u: apply(name, tables[u], decision, {"profile": cfg_name, "unit": u})[0] for u in units}
    got = pa.concat_tables(list(tables.values())).sort_by("doc_id")
    assert got["doc_id"].to_pylist() == expected.table.sort_by("doc_id")["doc_id"].to_pylist()
    assert got["texts"].to_pylist() == expected.table.sort_by("doc_id")["texts"].to_pylist()


def _near_duplicates():
    """Five edited copies of one story on different sites and dates (a cluster with several edges)."""
    rng = np.random.default_rng(1)
    words = rng.choice([f"v{i}" for i in range(3000)], 300).tolist()
    docs = []
    for k in range(5):
        w = list(words)
        for e in rng.integers(0, len(w), 2):
            w[e] = f"edit{k}"
        docs.append(make_doc(f"https://c{k}.org/s", [f"https://img/c{k}.jpg"], texts=[" ".join(w)],
                             date=f"202{k}-01-01", doc_id=f"near{k}"))
    return docs


def _write_units(docs, directory, n):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pq.write_table(documents_to_table(docs[i::n]), directory / f"u{i}.parquet")
    return [f"u{i}" for i in range(n)]


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_many_small_partitions_match_in_memory_passes(ray_local, profile, tmp_path, monkeypatch):
    """One file per task, record batches of 4 rows, a few documents per partition, one candidate edge per
    MinHash confirm partition."""
    import pipeline.dedup as dd

    monkeypatch.setattr(dd, "READ_BLOCK_BYTES", 1)
    monkeypatch.setattr(dd, "BATCH_ROWS", 4)
    monkeypatch.setattr(dd, "EDGES_PER_CONFIRM", 1)
    cfg = dedup_config(profile, ["dedup.num_partitions=2", "dedup.docs_per_partition=3"])
    docs = _corpus() + _near_duplicates()
    expected, want_stats = run_passes(docs, cfg)
    units = _write_units(docs, tmp_path / "in", 5)
    assert dd.num_partitions([str(tmp_path / "in" / f"{u}.parquet") for u in units], cfg) == 17
    stats = []
    out = dd.dedup_files([str(tmp_path / "in" / f"{u}.parquet") for u in units], cfg, tmp_path / "work", stats,
                         removed_dir=tmp_path / "removed")
    got = pa.concat_tables([pq.read_table(p) for p in out]).sort_by("doc_id")
    want = expected.table.sort_by("doc_id")
    for col in ("doc_id", "texts", "images", "metadata"):
        assert got[col].to_pylist() == want[col].to_pylist()
    removed = pq.read_table(tmp_path / "removed").to_pylist()
    assert {r["doc_id"]: r["reason"] for r in removed} == expected.removed_ids()
    def counts(st):
        d = st.as_dict()
        return d["stage"], d["in"]["document"], d["out"], d["dropped"]

    assert [counts(s) for s in stats] == [counts(s) for s in want_stats]
    if profile == "default":  # the cluster: only the most recent copy is left
        assert [d for d in got["doc_id"].to_pylist() if d.startswith("near")] == ["near4", "nearnew"]


@pytest.mark.parametrize("profile,name", [("default", "minhash"), ("default", "image_set"),
                                          ("obelics-2023", "image_set")])
def test_decide_then_apply_removals(ray_local, profile, name, tmp_path):
    from pipeline.dedup import apply, decide

    docs = _corpus() + _near_duplicates()
    units = _write_units(docs, tmp_path / "prev", 3)
    expected, _ = run_passes(docs, dedup_config(profile), [name])
    ddir = tmp_path / "decision"
    ddir.mkdir()
    decision = decide(name, tmp_path / "prev", units, {"profile": profile, "decision_dir": str(ddir)})
    assert sorted(p.name for p in ddir.iterdir()) == ["removed.parquet", "units"]  # the working files are gone
    removed = pq.read_table(decision["file"]).to_pylist()
    assert {r["doc_id"]: r["reason"] for r in removed} == expected.removed_ids()
    # each unit's share of the decision is in its own file, and a unit applies only that
    by_unit = {p.stem: set(pq.read_table(p)["doc_id"].to_pylist()) for p in (ddir / "units").iterdir()}
    assert set().union(*by_unit.values()) == set(expected.removed_ids())
    for ctx in ({"profile": profile}, None):
        tables = []
        for u in units:
            t = pq.read_table(tmp_path / "prev" / f"{u}.parquet")
            out, st = apply(name, t, decision, ctx or {"profile": profile, "unit": u})
            assert set(t["doc_id"].to_pylist()) - set(out["doc_id"].to_pylist()) == by_unit.get(u, set())
            tables.append(out)
        got = pa.concat_tables(tables).sort_by("doc_id")["doc_id"].to_pylist()
        assert got == expected.table.sort_by("doc_id")["doc_id"].to_pylist()


def test_empty_files_pass_through(ray_local, tmp_path):
    from obelics.document import DOCUMENT_SCHEMA
    from pipeline.dedup import dedup_files, num_rows

    (tmp_path / "in").mkdir()
    pq.write_table(DOCUMENT_SCHEMA.empty_table(), tmp_path / "in" / "empty.parquet")
    stats = []
    out = dedup_files([str(tmp_path / "in" / "empty.parquet")], "default", tmp_path / "work", stats)
    assert num_rows(out) == 0 and len(stats) == 5
    assert all(s.as_dict()["out"]["document"] == 0 for s in stats)
