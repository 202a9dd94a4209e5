"""The global-pass engine (pipeline.dedup) equals the pure in-memory passes, on the local and the Ray
backend (small corpus, local Ray, 2 CPUs)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from obelics.document import documents_to_table
from pipeline.components import read_batches
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


def _removed(decisions) -> dict:
    """{doc_id: reason} of every removal decision (the oracle's ``removed_ids`` shape), local or on object storage."""
    from pipeline.dedup import decision_table

    out = {}
    for d in decisions:
        if d["pass"] in ("url", "minhash", "image_set") and d["file"]:
            out.update({r["doc_id"]: r["reason"] for r in decision_table(d).to_pylist()})
    return out


def _concat(folder, units):
    return pa.concat_tables([pq.read_table(folder / f"{u}.parquet") for u in units]).sort_by("doc_id")


def _backend(name):
    from pipeline.shuffle import LocalBackend, RayBackend

    return RayBackend() if name == "ray" else LocalBackend()


def _counts(st):
    d = st.as_dict()
    return d["stage"], d["in"].get("document"), d["out"], d["dropped"]


@pytest.mark.parametrize("profile,backend", [("default", "ray"), ("obelics-2023", "ray"), ("default", "local"),
                                             ("obelics-2023", "local")])
def test_engine_matches_in_memory_passes(ray_local, profile, backend, tmp_path):
    """Decide over the units, apply to each: the same documents, removals and counts as the pure passes."""
    from pipeline.dedup import dedup_units

    cfg = dedup_config(profile, ["dedup.num_partitions=3", "dedup.image_url.max_count=10"])
    docs = _corpus()
    expected, want_stats = run_passes(docs, cfg)
    units = _write_units(docs, tmp_path / "in", 4)
    last, decisions, stats = dedup_units(tmp_path / "in", units, cfg, tmp_path / "work",
                                         ctx={"backend": _backend(backend)})
    got = _concat(last, units)
    want = expected.table.sort_by("doc_id")
    for col in ("doc_id", "texts", "images", "metadata"):
        assert got[col].to_pylist() == want[col].to_pylist()
    assert _removed(decisions) == expected.removed_ids()
    assert "urlold" in expected.removed_ids() and "setold" in expected.removed_ids()
    if profile == "default":
        assert expected.removed_ids()["nearold"] == "minhash:near_duplicate"
    by_stage = {s.stage: s for s in stats}
    assert by_stage["dedup.image_url"].dropped["image"]
    assert by_stage["dedup.paragraphs"].dropped["paragraph"]
    assert [_counts(s) for s in stats] == [_counts(s) for s in want_stats]


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


@pytest.mark.parametrize("profile,backend", [("default", "ray"), ("obelics-2023", "local")])
def test_many_small_partitions_match_in_memory_passes(ray_local, profile, backend, tmp_path, monkeypatch):
    """One file per task, record batches of 4 rows, a few documents per partition, one candidate edge per
    MinHash confirm partition."""
    import pipeline.dedup as dd

    monkeypatch.setattr(dd, "READ_BLOCK_BYTES", 1)
    monkeypatch.setattr(dd, "BATCH_ROWS", 4)
    monkeypatch.setattr(dd, "FLUSH_BYTES", 1)  # a map task writes each input batch as it comes
    cfg = dedup_config(profile, ["dedup.num_partitions=2", "dedup.docs_per_partition=3"])
    docs = _corpus() + _near_duplicates()
    expected, want_stats = run_passes(docs, cfg)
    units = _write_units(docs, tmp_path / "in", 5)
    assert dd.num_partitions([str(tmp_path / "in" / f"{u}.parquet") for u in units], cfg) == 17
    last, decisions, stats = dd.dedup_units(tmp_path / "in", units, cfg, tmp_path / "work",
                                            ctx={"backend": _backend(backend)})
    got = _concat(last, units)
    want = expected.table.sort_by("doc_id")
    for col in ("doc_id", "texts", "images", "metadata"):
        assert got[col].to_pylist() == want[col].to_pylist()
    assert _removed(decisions) == expected.removed_ids()
    assert [_counts(s) for s in stats] == [_counts(s) for s in want_stats]
    if profile == "default":  # the cluster: only the most recent copy is left
        assert [d for d in got["doc_id"].to_pylist() if d.startswith("near")] == ["near4", "nearnew"]


@pytest.mark.parametrize("profile,name", [("default", "minhash"), ("default", "image_set"),
                                          ("obelics-2023", "image_set")])
def test_decide_then_apply_removals(ray_local, profile, name, tmp_path):
    from pipeline.dedup import apply, decide, decision_table

    docs = _corpus() + _near_duplicates()
    units = _write_units(docs, tmp_path / "prev", 3)
    expected, _ = run_passes(docs, dedup_config(profile), [name])
    ddir = tmp_path / "decision"
    ddir.mkdir()
    decision = decide(name, tmp_path / "prev", units, {"profile": profile, "decision_dir": str(ddir)})
    assert sorted(p.name for p in ddir.iterdir()) == ["units"]  # the working files are gone
    removed = decision_table(decision).to_pylist()
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


def test_empty_files_pass_through(tmp_path):
    from obelics.document import DOCUMENT_SCHEMA
    from pipeline.dedup import dedup_units, num_rows

    (tmp_path / "in").mkdir()
    pq.write_table(DOCUMENT_SCHEMA.empty_table(), tmp_path / "in" / "empty.parquet")
    last, decisions, stats = dedup_units(tmp_path / "in", ["empty"], "default", tmp_path / "work")
    assert num_rows([str(last / "empty.parquet")]) == 0 and len(stats) == 5
    assert all(s.as_dict()["out"]["document"] == 0 for s in stats)


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_documents_without_images_stay_out_of_the_image_set_shuffle(profile, tmp_path, monkeypatch):
    """A document without an image has no image-set key and is always kept: it is not shuffled (a null key
    hashed to partition 0, whose reduce task then held every such document of the dataset). Same removals."""
    import pipeline.dedup as dd
    from pipeline.shuffle import LocalBackend

    docs = _corpus() + [make_doc(f"https://bare{k}.com/", [], texts=[f"text {k}"], doc_id=f"bare{k}")
                        for k in range(30)]
    units = _write_units(docs, tmp_path / "in", 3)
    seen = []
    real = dd._reduce_task

    def recording(locs, fn, p):
        if fn.func is not dd._pair_join_reduce:  # obelics-2023's join of the removed pairs reads every document
            seen.append(read_batches(locs).num_rows)
        return real(locs, fn, p)

    monkeypatch.setattr(dd, "_reduce_task", recording)
    cfg = dedup_config(profile)
    last, decisions, _ = dd.dedup_units(tmp_path / "in", units, cfg, tmp_path / "work", passes=["image_set"],
                                        ctx={"backend": LocalBackend()})
    with_images = sum(1 for d in docs if any(u for u in d.images if u))
    assert sum(seen) == with_images < len(docs)
    expected, _ = run_passes(docs, cfg, ["image_set"])
    assert _removed(decisions) == expected.removed_ids()
