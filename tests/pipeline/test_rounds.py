"""The multi-round shuffle (pipeline.rounds): its plan, bounded fan-in, atomic merge files, and the same
decisions as one round and as the pure passes (the oracle) on the cross-unit test corpus."""

import numpy as np
import pyarrow as pa
import pytest

from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from pipeline.components import read_batches
from pipeline.dedup import decision_table
from pipeline.rounds import GroupedWriter, plan_shuffle, refine
from tests.filters.dedup_helpers import make_doc
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture
from tests.pipeline.test_dedup_ray import _concat, _corpus, _counts, _near_duplicates, _removed, _write_units

MULTI = ["dedup.shuffle_fan_in=2", "dedup.shuffle_single_round_max=1"]


def test_refine_splits_every_slot_into_at_most_fan_in_slots():
    b = refine(np.array([0, 17], np.int64), 4)
    assert b.tolist() == [0, 4, 8, 12, 17]
    b2 = refine(b, 4)
    assert b2[0] == 0 and b2[-1] == 17 and np.diff(b2).max() == 2 and len(b2) == 17
    assert (np.diff(refine(b2, 4)) == 1).all()
    assert refine(np.array([0, 3, 100]), 2).tolist() == [0, 1, 3, 51, 100]


def test_plan_one_round_when_small_else_rounds_with_bounded_fan_in():
    one = plan_shuffle(10, 20, 64, 100_000)
    assert not one.multi and one.rounds == () and one.opens == 200 and one.max_task_opens == 10
    # more map files than the fan-in: merge rounds even if M x P is small
    assert plan_shuffle(65, 2, 64, 100_000).multi
    # a snapshot-sized shuffle (12,800 map files, 16,400 partitions) and 25 snapshots' (320,000 x 410,000)
    for m, p in ((12_800, 16_400), (320_000, 410_000)):
        plan = plan_shuffle(m, p, 64, 100_000)
        assert plan.multi and plan.max_task_opens <= 64
        assert plan.opens < m * p / 100  # one round: m x p
        assert all(r.opens <= 1.1 * 64 * m for r in plan.rounds)  # ~ each file once per slot it holds (<= F)
        assert len(plan.rounds) <= int(np.ceil(np.log(max(m, p)) / np.log(64))) + 1
    # linear in the data up to the log factor: 10x the files and partitions, ~10x the opens
    a, b = plan_shuffle(10_000, 10_000, 64, 1).opens, plan_shuffle(100_000, 100_000, 64, 1).opens
    assert b < 15 * a


def _dict_index(outs):
    """The driver's index as it was: {label: [(path, [batch, ...])]}, files in order (the reference)."""
    locs = {}
    for path, labels in outs:
        for i, k in enumerate(labels):
            entries = locs.setdefault(int(k), [])
            if entries and entries[-1][0] == path:
                entries[-1][1].append(i)
            else:
                entries.append((path, [i]))
    return locs


def test_flat_index_equals_the_dict_of_lists():
    """The flat-array index gives each label the same (file, batches) list as the dict it replaces, whatever
    the order results arrive in; select + build keeps the other labels and renumbers the files."""
    from pipeline.rounds import IndexBuilder, locations

    rng = np.random.default_rng(1)
    outs = [(f"f{i}", np.sort(rng.integers(0, 9, rng.integers(0, 12)))) for i in range(30)]
    outs[3] = (outs[3][0], np.array([5, 1, 5, 1]))  # a file with a label in two separate batches
    ref = _dict_index(outs)
    idx = locations(outs)
    assert idx.keys.tolist() == sorted(ref) and len(idx) == len(ref)
    assert all(idx.group(g) == ref[int(k)] for g, k in enumerate(idx.keys))
    assert idx.get(100) is None and idx.get(int(idx.keys[0])) == ref[int(idx.keys[0])]
    assert idx.files_per_label().tolist() == [len(ref[k]) for k in sorted(ref)]
    b = IndexBuilder()
    for i in rng.permutation(len(outs)).tolist():  # arrival order does not matter, only the call's position
        b.add(i, *outs[i])
    b.add(len(outs), None, np.array([1]))  # a result without a file holds nothing
    again = b.build()
    assert [again.group(g) for g in range(len(again))] == [idx.group(g) for g in range(len(idx))]
    # keep the labels below 4, add merged files for the others: their entries come from the new files only
    keep = idx.keys < 4
    merged = IndexBuilder()
    merged.add(0, "m0", np.array([4, 6]))
    merged.add(1, "m1", np.array([6, 8]))
    new = merged.build(idx.select(keep))
    assert {int(k): new.group(g) for g, k in enumerate(new.keys)} == \
        {**{k: v for k, v in ref.items() if k < 4}, 4: [("m0", [0])], 6: [("m0", [1]), ("m1", [0])], 8: [("m1", [1])]}
    assert set(new.files) == {p for k, v in ref.items() if k < 4 for p, _ in v} | {"m0", "m1"}
    assert new.nbytes() < 40 * new.entries


def test_index_is_built_in_place_without_copies_beside_it():
    """The driver's peak while an index is built (its largest memory in a pass): the builder's buffers are
    handed over and sorted in place, so the peak is the arrays (16 bytes an entry), the sort order and one
    array being permuted (< 18 bytes more; new copies of every array beside the builder's took 24 more), and
    the order is (label, file, batch) as a full sort gives it."""
    import tracemalloc

    from pipeline.rounds import IndexBuilder

    labels = [(np.arange(64, dtype=np.int64) + (i * 7919) % 20_000)[::-1] for i in range(4096)]  # a merge round's
    tracemalloc.start()  # (numpy's buffers are traced)
    b = IndexBuilder()
    for i, lab in enumerate(labels):  # results, in call order (64 labels a file, in any order within it)
        b.add(i, f"round-2/{i:06d}.arrow", lab)
    for g in (b.label, b.file, b.batch):  # no spare capacity: the peak measured is the build's
        g.a.resize(g.n, refcheck=False)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    idx = b.build()
    peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    n = 4096 * 64
    assert idx.entries == n and peak < 18 * n  # beyond the 16 bytes an entry held: the order and one temporary
    label = np.concatenate(labels)
    file = np.repeat(np.arange(4096), 64)
    batch = np.tile(np.arange(64), 4096)
    ref = np.lexsort((batch, file, label))
    assert (idx.label == label[ref]).all() and (idx.batch == batch[ref]).all()
    assert [idx.files[f] for f in idx.file[:500].tolist()] == [f"round-2/{f:06d}.arrow" for f in file[ref][:500]]


def test_merge_file_is_atomic(tmp_path):
    """A merge task killed while writing leaves neither its file nor a temporary one."""
    w = GroupedWriter(str(tmp_path / "m.arrow"), 1)
    w.add(pa.table({"x": [1, 2], "_part": [0, 1]}), np.array([0, 1]))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    w = GroupedWriter(str(tmp_path / "m.arrow"), 1 << 30)
    w.add(pa.table({"x": [1, 2, 3]}), np.array([1, 0, 1]))
    path, labels = w.close()
    assert labels.tolist() == [0, 1] and [p.name for p in tmp_path.iterdir()] == ["m.arrow"]



def test_grouped_writer_writes_each_label_once_a_flush_rows_in_order(tmp_path):
    """Several added tables (many chunks) and strings: one batch a label a flush, labels ascending, each
    batch the label's rows in the order they were added."""
    rng = np.random.default_rng(3)
    w = GroupedWriter(str(tmp_path / "g.arrow"), 1 << 30)
    rows = []
    for k in range(4):
        n = 50 + k
        label = rng.integers(0, 7, n)
        label[label == 5] = 6  # a label never used
        t = pa.table({"i": np.arange(len(rows), len(rows) + n), "s": [f"s{len(rows) + j}" * (j % 3) for j in range(n)]})
        rows += list(zip(label.tolist(), t["i"].to_pylist(), t["s"].to_pylist()))
        w.add(t, label)
    path, labels = w.close()
    with pa.OSFile(path, "rb") as f:
        r = pa.ipc.open_file(f)
        got = [(lab, r.get_batch(b).to_pydict()) for b, lab in enumerate(labels.tolist())]
    assert [lab for lab, _ in got] == sorted({lab for lab, _, _ in rows})
    for lab, batch in got:
        assert batch == {"i": [i for x, i, _ in rows if x == lab], "s": [s for x, _, s in rows if x == lab]}


def _run(cfg, docs, tmp_path, name, backend=None, passes=None):
    from pipeline.dedup import dedup_units
    from pipeline.shuffle import LocalBackend

    units = _write_units(docs, tmp_path / name / "in", 5)
    last, decisions, stats = dedup_units(tmp_path / name / "in", units, cfg, tmp_path / name / "work", passes=passes,
                                         ctx={"backend": backend or LocalBackend()})
    return _concat(last, units), decisions, stats


def _small_tasks(monkeypatch):
    import pipeline.dedup as dd

    monkeypatch.setattr(dd, "READ_BLOCK_BYTES", 1)  # a map task per unit: 5 map files
    monkeypatch.setattr(dd, "BATCH_ROWS", 4)
    monkeypatch.setattr(dd, "FLUSH_BYTES", 1)  # every input batch flushed: many batches per slot


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_multi_round_equals_one_round_and_the_pure_passes(profile, tmp_path, monkeypatch):
    """Every pass (URL, frequent image URLs, paragraphs, image sets, MinHash with its confirm shuffle) with
    merge rounds forced (fan-in 2: 5 map files, 17 partitions) decides as one round and as the oracle."""
    import pipeline.dedup as dd

    _small_tasks(monkeypatch)
    plans = []
    real_plan = dd.shuffle_plan
    monkeypatch.setattr(dd, "shuffle_plan", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    docs = _corpus() + _near_duplicates()
    base = ["dedup.num_partitions=2", "dedup.docs_per_partition=3"]
    one = dedup_config(profile, base)
    multi = dedup_config(profile, base + MULTI)
    got1, dec1, st1 = _run(one, docs, tmp_path, "one")
    assert not any(p.multi for p in plans)
    plans.clear()
    got2, dec2, st2 = _run(multi, docs, tmp_path, "multi")
    assert plans and all(p.multi for p in plans) and max(len(p.rounds) for p in plans) >= 3
    expected, want_stats = run_passes(docs, one)
    want = expected.table.sort_by("doc_id")
    for got in (got1, got2):
        for col in ("doc_id", "texts", "images", "metadata"):
            assert got[col].to_pylist() == want[col].to_pylist()
    assert _removed(dec2) == _removed(dec1) == expected.removed_ids()
    assert [_counts(s) for s in st2] == [_counts(s) for s in st1] == [_counts(s) for s in want_stats]
    for d1, d2 in zip(dec1, dec2):  # every decision file, row for row (frequent image URLs, drops, removals)
        assert d1["pass"] == d2["pass"]
        if d1["file"]:
            t1, t2 = decision_table(d1), decision_table(d2)
            assert t1.sort_by(t1.column_names[0]).equals(t2.sort_by(t2.column_names[0]))
    # the working files are gone: only each decision's own files are left
    for d in dec2:
        if d["file"]:
            left = {p.name for p in (tmp_path / "multi" / "work").glob("*/decision/*")}
            assert not any(n.startswith(".") for n in left), left


class _CountingBackend:
    """The local backend, counting the partition files each task opens (``pipeline.shuffle.open_ipc``)."""

    name = "local"

    def __init__(self):
        from pipeline.shuffle import LocalBackend

        self.inner = LocalBackend()
        self.per_task: list[int] = []
        self.current = None

    def put(self, value):
        return self.inner.put(value)

    def _wrap(self, fn):
        def task(*args):
            self.current = 0
            try:
                return fn(*args)
            finally:
                self.per_task.append(self.current)
                self.current = None
        return task

    def map(self, fn, calls):
        return self.inner.map(self._wrap(fn), calls)

    def imap(self, fn, calls):
        return self.inner.imap(self._wrap(fn), calls)

    def map_unordered(self, fn, calls, on_result):
        return self.inner.map_unordered(self._wrap(fn), calls, on_result)


def test_no_task_opens_more_than_the_fan_in(tmp_path, monkeypatch):
    """With merge rounds forced, every task (map, merge, reduce, route) opens at most F partition files per
    index it reads (a MinHash join task reads up to 3),
    and the pass's opens stay within the plans' bound."""
    import pipeline.dedup as dd
    import pipeline.shuffle as sh

    _small_tasks(monkeypatch)
    backend = _CountingBackend()
    real_open = sh.open_ipc
    opens = []

    def counting_open(path):
        backend.current += 1
        opens.append(path)
        return real_open(path)

    monkeypatch.setattr(sh, "open_ipc", counting_open)
    plans = []
    real_plan = dd.shuffle_plan
    monkeypatch.setattr(dd, "shuffle_plan", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    for fan_in in (2, 3):
        backend.per_task.clear()
        opens.clear()
        plans.clear()
        cfg = dedup_config("default", ["dedup.num_partitions=2", "dedup.docs_per_partition=3",
                                       f"dedup.shuffle_fan_in={fan_in}", "dedup.shuffle_single_round_max=1"])
        _run(cfg, _corpus() + _near_duplicates(), tmp_path, f"f{fan_in}", backend)
        # a MinHash task joining k indexes (nodes, edges, stars: k <= 3) opens at most F files of each
        assert max(backend.per_task) <= 3 * fan_in
        assert sum(backend.per_task) == len(opens) <= sum(p.opens for p in plans)
        assert any(n > 1 for n in backend.per_task)


def test_multi_round_on_ray(tmp_path, monkeypatch):
    """The same merge rounds as Ray tasks: the same result as the pure passes."""
    ray = pytest.importorskip("ray")
    import pipeline.shuffle as sh
    from pipeline.executor import ensure_ray
    from pipeline.shuffle import RayBackend

    monkeypatch.setattr(sh, "IN_FLIGHT", 2)  # RayBackend.imap's window: results still in call order
    ensure_ray(num_cpus=2)
    try:
        cfg = dedup_config("default", ["dedup.num_partitions=5"] + MULTI)
        docs = _corpus() + _near_duplicates()
        got, dec, _ = _run(cfg, docs, tmp_path, "ray", RayBackend())
        expected, _ = run_passes(docs, cfg)
        assert got["doc_id"].to_pylist() == expected.table.sort_by("doc_id")["doc_id"].to_pylist()
        assert _removed(dec) == expected.removed_ids()
    finally:
        ray.shutdown()


def _reduce_rows(monkeypatch):
    import pipeline.dedup as dd

    seen = []
    real = dd._reduce_task

    def recording(locs, fn, p):
        t = read_batches(locs)
        seen.append(t)
        return real(locs, fn, p)

    monkeypatch.setattr(dd, "_reduce_task", recording)
    return seen


def test_documents_without_url_spread_over_the_url_partitions(tmp_path, monkeypatch):
    """A missing or empty URL is no URL duplicate: such documents are partitioned by doc_id, not all into
    one partition; the removals (older copies, documents without images) are the oracle's."""
    seen = _reduce_rows(monkeypatch)
    bare = [make_doc(None if k % 2 else "", [f"https://img/b{k}.jpg"] if k % 3 else [], texts=[f"t {k}"],
                     doc_id=f"nourl{k}") for k in range(60)]
    docs = _corpus() + bare
    cfg = dedup_config("default", ["dedup.num_partitions=8"])
    got, dec, _ = _run(cfg, docs, tmp_path, "u", passes=["url"])
    per_part = [sum(1 for d in t["doc_id"].to_pylist() if d.startswith("nourl")) for t in seen]
    assert sum(per_part) == 60 and max(per_part) < 30  # one partition held all 60 before
    expected, _ = run_passes(docs, cfg, ["url"])
    assert _removed(dec) == expected.removed_ids()
    assert sum(1 for d in expected.removed_ids() if d.startswith("nourl")) == 20  # without images


def test_paragraphs_without_domain_and_documents_without_paragraphs(tmp_path, monkeypatch):
    """Documents without a URL share the domain "" as in the original (``urlparse(url).netloc``): a
    paragraph repeated among them is dropped, as the oracle does. Documents with no countable paragraph
    can have nothing dropped and are not shuffled."""
    seen = _reduce_rows(monkeypatch)
    rep = "A repeated paragraph without a domain"
    nodom = [make_doc(None, [f"https://img/p{k}.jpg"], texts=[f"{rep}\n\nown text {k}"], doc_id=f"nodom{k}")
             for k in range(4)]
    empty = [make_doc(f"https://e{k}.com/", [f"https://img/e{k}.jpg"], texts=[], doc_id=f"empty{k}") for k in range(9)]
    docs = _corpus() + nodom + empty
    cfg = dedup_config("default")
    got, dec, _ = _run(cfg, docs, tmp_path, "p", passes=["paragraphs"])
    shuffled = {d for t in seen for d in t["doc_id"].to_pylist()}
    assert not any(d.startswith("empty") for d in shuffled) and {f"nodom{k}" for k in range(4)} <= shuffled
    expected, _ = run_passes(docs, cfg, ["paragraphs"])
    want = expected.table.sort_by("doc_id")
    assert got["texts"].to_pylist() == want["texts"].to_pylist()
    texts = dict(zip(got["doc_id"].to_pylist(), got["texts"].to_pylist()))
    assert all(rep not in (texts[f"nodom{k}"][0] or "") for k in range(4))


def test_run_folder_resumes_when_only_dedup_execution_settings_differ(tmp_path):
    """A run folder saved before the shuffle settings existed (or with other partition sizes) is resumed, not
    refused as another plan: those settings change how the passes run, never what they decide."""
    import json

    from pipeline.run import run
    from tests.pipeline.test_run import OFFLINE, digest, sample_warc

    out = tmp_path / "out"
    first = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    ref = digest(out)
    plan = json.loads((out / "run.json").read_text())
    for k in ("shuffle_fan_in", "shuffle_single_round_max"):  # an older run's plan
        del plan["profile_data"]["dedup"][k]
    plan["profile_data"]["dedup"]["docs_per_partition"] = 6250
    (out / "run.json").write_text(json.dumps(plan))
    again = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert again["summary"] == first["summary"] and digest(out) == ref
    assert json.loads((out / "run.json").read_text())["profile_data"]["dedup"]["shuffle_fan_in"] == 64
    with pytest.raises(ValueError, match="another plan"):  # a setting that changes decisions still differs
        run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false",
                                                                       "dedup.image_url.max_count=3"])


def test_multi_round_on_object_storage(s3, tmp_path):  # noqa: F811 - the fixture
    """The units and every partition, merge and routed file on the loopback S3 server (no rename there): the
    merge rounds give the oracle's removals, and no working object is left under the decisions."""
    from pipeline.dedup import dedup_units
    from pipeline.shuffle import LocalBackend

    bucket = s3.make_bucket("rounds")
    docs = _corpus() + _near_duplicates()
    units = _write_units(docs, tmp_path / "in", 3)
    s3.upload_tree(tmp_path / "in", "rounds", "in/")
    cfg = dedup_config("default", ["dedup.num_partitions=5"] + MULTI)
    last, dec, _ = dedup_units(f"{bucket}/in", units, cfg, f"{bucket}/work", ctx={"backend": LocalBackend()})
    expected, _ = run_passes(docs, cfg)
    assert _removed(dec) == expected.removed_ids()
    keys = s3.keys("rounds", "work/")
    assert keys and not [k for k in keys if "-work-" in k or k.endswith(".arrow")]



@pytest.mark.parametrize("extra", [[], MULTI])
def test_a_removed_url_warc_pair_removes_its_documents_in_every_partition(extra, tmp_path):
    """obelics-2023 removes image-set duplicates by (url, warc_filename): a document sharing the removed pair
    but with another image set (another image-set partition) goes too, through the join on the pair's hash,
    in one round and with merge rounds; as the pure pass does."""
    docs = _corpus()
    docs.append(make_doc("https://news.com/a", ["https://img/other.jpg"], texts=["same record, other images"],
                         warc="CC-MAIN-2021-01/w", date="2021-01-01", doc_id="setold-twin"))
    docs.append(make_doc("https://news.com/a", ["https://img/third.jpg"], texts=["same url, other WARC"],
                         warc="CC-MAIN-2019-01/w", date="2019-01-01", doc_id="other-warc"))
    cfg = dedup_config("obelics-2023", ["dedup.num_partitions=17"] + extra)
    got, decisions, _ = _run(cfg, docs, tmp_path, "pairs", passes=["image_set"])
    expected, _ = run_passes(docs, cfg, ["image_set"])
    removed = _removed(decisions)
    assert removed == expected.removed_ids()
    assert {"setold", "setold-twin"} <= set(removed) and "other-warc" not in removed
    assert got["doc_id"].to_pylist() == expected.table.sort_by("doc_id")["doc_id"].to_pylist()
