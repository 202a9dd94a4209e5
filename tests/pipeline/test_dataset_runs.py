"""One run = one dataset: dedup decides over every unit and snapshot, a run is extended with more inputs,
and ``run.use_ray=false`` runs without Ray."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup.config import dedup_config
from filters.dedup.passes import run_passes
from obelics.document import documents_to_table
from tests.conftest import ROOT
from tests.pipeline.test_dedup_ray import _corpus, _near_duplicates
from tests.pipeline.test_run import OFFLINE, digest, sample_warc

NO_RAY = OFFLINE + ["run.use_ray=false"]


# -- (b) duplicates across units and snapshots are removed as within one unit --------------------------
def _split(docs, n_units: int, snapshots=("CC-MAIN-2023-06", "CC-MAIN-2023-14")):
    """Documents dealt to units round-robin; unit names carry the snapshot, as a run's input names do."""
    names = [f"{snapshots[i % len(snapshots)]}-{i:05d}" for i in range(n_units)]
    return {names[i]: docs[i::n_units] for i in range(n_units)}


def _engine(units: dict, cfg, tmp):
    from pipeline.dedup import decision_table, dedup_units
    from pipeline.shuffle import LocalBackend

    src = tmp / "in"
    src.mkdir(parents=True)
    for u, docs in units.items():
        pq.write_table(documents_to_table(docs), src / f"{u}.parquet")
    last, decisions, stats = dedup_units(src, sorted(units), cfg, tmp / "work", ctx={"backend": LocalBackend()})
    table = pa.concat_tables([pq.read_table(last / f"{u}.parquet") for u in sorted(units)]).sort_by("doc_id")
    removed = {}
    for d in decisions:
        if d["pass"] in ("url", "minhash", "image_set") and d["file"]:
            removed.update({r["doc_id"]: r["reason"] for r in decision_table(d).to_pylist()})
    return table, removed, [s.as_dict() for s in stats]


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_cross_unit_and_cross_snapshot_duplicates_removed_as_in_one_unit(profile, tmp_path):
    cfg = dedup_config(profile, ["dedup.num_partitions=3", "dedup.image_url.max_count=10"])
    docs = _corpus() + _near_duplicates()
    units = _split(docs, 7)
    unit_of = {d.doc_id: u for u, ds in units.items() for d in ds}
    # every kind of duplicate has its copies in different units, and some in different snapshots
    pairs = {"url": ("urlold", "d00"), "image set": ("setold", "setnew"), "near-duplicate": ("nearold", "nearnew")}
    for kind, (a, b) in pairs.items():
        assert unit_of[a] != unit_of[b], kind
    assert unit_of["urlold"][:15] != unit_of["d00"][:15]  # the URL copies sit in different snapshots
    ads = {unit_of[d.doc_id] for d in docs if "https://ads/x.gif" in d.images}  # the frequent image URL
    assert len(ads) >= 6 and len({u[:15] for u in ads}) == 2
    menu = {unit_of[d.doc_id] for d in docs if d.url.startswith("https://site1.com/")}  # a domain's boilerplate
    assert len(menu) >= 2
    near = {unit_of[f"near{k}"] for k in range(5)}
    assert len(near) >= 3

    one, one_removed, one_stats = _engine({"all": docs}, cfg, tmp_path / "one")
    many, many_removed, many_stats = _engine(units, cfg, tmp_path / "many")
    expected, _ = run_passes(docs, cfg)  # the pure reference passes: the oracle
    for col in ("doc_id", "texts", "images", "metadata"):
        assert many[col].to_pylist() == one[col].to_pylist() == expected.table.sort_by("doc_id")[col].to_pylist()
    assert many_removed == one_removed == expected.removed_ids()
    assert many_stats == one_stats
    assert {"urlold", "setold"} <= set(many_removed)
    drops = {s["stage"]: s["dropped"] for s in many_stats}
    assert drops["dedup.image_url"]["image"] and drops["dedup.paragraphs"]["paragraph"]
    if profile == "default":
        assert many_removed["nearold"] == "minhash:near_duplicate"
        assert sorted(d for d in many["doc_id"].to_pylist() if d.startswith("near")) == ["near4", "nearnew"]


# -- (a) extend a run with the next snapshot ------------------------------------------------------------
def _snapshots(tmp_path, shared):
    """Two "snapshots" of the shared WARCs; the second holds a copy of pages of the first (another file)."""
    a = [sample_warc(), shared("data", "warc", "whirlwind__whirlwind.warc.gz"),
         shared("data", "warc", "resiliparse__warcfile.warc.gz")]
    copy = tmp_path / "snap-b" / "copy-of-sample.warc.gz"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(sample_warc(), copy)
    b = [copy, shared("data", "warc", "ukwa__wikipedia-mona-lisa.warc.gz")]
    return [str(p) for p in a], [str(p) for p in b]


def _unit_files(out, inputs):
    """The files of the units of ``inputs`` in the stages before the first global decision, with mtimes."""
    from pipeline.run import _reusable_stages, make_plan
    from pipeline.sources import input_name

    stages = _reusable_stages(make_plan(json.loads((out / "run.json").read_text())["stages"]))

    files = {}
    for st in stages:
        for i in inputs:
            for suffix in (".parquet", ".stats.json"):
                p = out / "work" / st / f"{input_name(i)}{suffix}"
                files[p] = p.stat().st_mtime_ns
    return stages, files


@pytest.mark.slow
def test_extend_a_run_with_the_next_snapshot_equals_a_fresh_run(tmp_path, shared):
    from pipeline.run import run

    a, b = _snapshots(tmp_path, shared)
    ext, fresh = tmp_path / "ext", tmp_path / "fresh"
    first = run("default", ext, a, overrides=NO_RAY)
    stages, before = _unit_files(ext, a)
    assert stages and len(before) == 2 * len(stages) * len(a)
    first_decision = next((ext / "work").glob("*-dedup_url/decision.json")).read_text()

    # a subset or another set of inputs is still refused
    with pytest.raises(ValueError, match="another plan"):
        run("default", ext, a[:2], overrides=NO_RAY)
    with pytest.raises(ValueError, match="another plan"):
        run("default", ext, a[:2] + b, overrides=NO_RAY)

    extended = run("default", ext, a + b, overrides=NO_RAY)
    # the first snapshot's extraction and text filters were not redone: their files are untouched
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert next((ext / "work").glob("*-dedup_url/decision.json")).read_text() != first_decision
    assert json.loads((ext / "run.json").read_text())["inputs"] == a + b

    run("default", fresh, a + b, overrides=NO_RAY)
    got, want = digest(ext), digest(fresh)
    assert got == want  # identical Parquet rows, WebDataset members and funnel counts
    assert extended["summary"]["units"] == 5 and first["summary"]["units"] == 3
    # the copy of the sample in the second snapshot was deduplicated against the first
    url = next(s for s in got["stages"] if s["stage"] == "dedup.url")
    assert url["dropped"]["document"]["url_dedup:older_copy"] >= first["summary"]["documents"]
    assert got["summary"]["documents"] == extended["summary"]["documents"] > 0


# -- (c) no Ray ------------------------------------------------------------------------------------------
def test_use_ray_false_never_imports_ray(tmp_path):
    code = f"""
import sys
from pipeline.run import run
stats = run("default", {str(tmp_path / 'out')!r}, [{str(sample_warc())!r}], overrides={NO_RAY!r})
assert stats["summary"]["documents"] > 0, stats["summary"]
assert "ray" not in sys.modules, "ray was imported"
print("NO_RAY_OK", stats["summary"]["documents"])
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "NO_RAY_OK" in r.stdout, r.stderr[-3000:]
    # the dedup decisions were made (by the local backend) and written like any run's
    decisions = sorted(p.parent.name for p in (tmp_path / "out" / "work").glob("*/decision.json"))
    assert [d.split("-", 1)[1] for d in decisions if "dedup" in d] == [
        "dedup_url", "dedup_minhash", "dedup_image_urls", "dedup_paragraphs", "dedup_image_sets"]
