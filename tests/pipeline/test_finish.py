"""The end of a run streams: units regrouped into shards one at a time, stats merged one entry at a time,
the driver's memory flat in the number of units and documents."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from obelics.document import DOCUMENT_SCHEMA, documents_to_table
from pipeline.finish import count_documents, gather, shard_tables, unit_tables
from pipeline.report.funnel import Reservoir, StatsMerger, merge_stats
from pipeline.writers.base import write_outputs
from tests.conftest import ROOT
from tests.filters.dedup_helpers import make_doc

STAGE = "05-final"


def _unit(k: int, n: int):
    docs = [make_doc(f"https://site{k}.example/{j}", [f"https://img{k}.example/{j}.jpg"] * (j % 3),
                     texts=[" ".join(f"w{(k * 7 + j + i) % 500}" for i in range(40 + j % 17))], doc_id=f"{k:05d}-{j:04d}")
            for j in range(n)]
    t = documents_to_table(docs)
    gm = [json.dumps({**json.loads(s), "http_headers": {"x": "1"}}) for s in t["general_metadata"].to_pylist()]
    return t.set_column(t.schema.get_field_index("general_metadata"), "general_metadata", pa.array(gm, pa.string()))


def _work(tmp_path, sizes: list[int]) -> tuple[str, list[str]]:
    work = tmp_path / "work"
    (work / STAGE).mkdir(parents=True)
    units = [f"u{k:04d}" for k in range(len(sizes))]
    for k, (u, n) in enumerate(zip(units, sizes)):
        pq.write_table(_unit(k, n), work / STAGE / f"{u}.parquet")
    return str(work), units


def test_shard_tables_regroups_units_in_order():
    t = pa.table({"x": list(range(23))})
    cuts = [0, 5, 5, 6, 13, 13, 23]  # units of 5, 0, 1, 7, 0 and 10 rows
    units = [t.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
    for per in (1, 3, 4, 7, 23, 50):
        got = [s["x"].to_pylist() for s in shard_tables(iter(units), per)]
        want = [list(range(23))[k:k + per] for k in range(0, 23, per)]
        assert got == want, per
    empty = list(shard_tables([t.slice(0, 0)], 4))
    assert len(empty) == 1 and empty[0].num_rows == 0  # no documents: one empty shard, as the writers expect


def test_streamed_shards_equal_the_gathered_table_written_at_once(tmp_path):
    from pipeline.writers.config import OutputConfig

    work, units = _work(tmp_path, [3, 0, 8, 1, 5])
    missing = units + ["u9999"]  # a unit without output (no Parquet) is skipped
    assert count_documents(work, STAGE, missing) == 17
    gathered = gather(work, STAGE, missing)
    assert gathered.num_rows == 17 and gathered.schema == DOCUMENT_SCHEMA
    assert all("http_headers" not in s for s in gathered["general_metadata"].to_pylist())
    cfg = OutputConfig(formats=["parquet"])
    write_outputs(gathered, str(tmp_path / "at-once"), cfg, 4)
    from pipeline.writers.base import write_parts

    write_parts(shard_tables(unit_tables(work, STAGE, missing), 4), 5, str(tmp_path / "streamed"), cfg)
    names = sorted(p.name for p in (tmp_path / "at-once" / "parquet").iterdir())
    assert len(names) == 10 and names == sorted(p.name for p in (tmp_path / "streamed" / "parquet").iterdir())
    for name in names:
        assert (tmp_path / "at-once" / "parquet" / name).read_bytes() == (tmp_path / "streamed" / "parquet" / name).read_bytes()
    with pytest.raises(ValueError, match="3 shards given, 5 announced"):
        write_parts(shard_tables(unit_tables(work, STAGE, missing), 6), 5, str(tmp_path / "bad"), cfg)


def test_reservoir_keeps_everything_up_to_k_then_a_uniform_sample():
    r = Reservoir(10)
    r.extend(range(4))
    r.extend(range(4, 10))
    assert r.values == list(range(10))
    big = Reservoir(1000, seed=1)
    for a in range(0, 100_000, 250):
        big.extend(range(a, a + 250))
    assert len(big.values) == 1000 and big.seen == 100_000 and len(set(big.values)) == 1000
    halves = sum(v < 50_000 for v in big.values)
    assert 400 < halves < 600  # uniform: about half from each half of the stream, not only the first k


def test_streaming_merge_equals_merge_of_everything():
    shards = [{"read": {"records": 3, "html_records": 2, "skipped": {"x": 1}},
               "stages": [{"stage": "a", "in": {"document": 2}, "out": {"document": 1},
                           "dropped": {"document": {"short": 1}}}],
               "metrics": {"a": {"words": [k, None, k + 1]}}, "thresholds": {"words": {"min": 1}},
               "distributions": {"words_per_document": [k]}, "outputs": [{"file": f"f{k}"}]} for k in range(5)]
    m = StatsMerger()
    for s in shards:
        m.add(s)
    assert m.result() == merge_stats(shards)
    assert merge_stats(shards)["metrics"]["a"]["words"] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert merge_stats(shards)["shards"] == 5 and merge_stats(shards)["stages"][0]["in"] == {"document": 10}


MEASURE = r"""
import json, sys, tracemalloc
import pyarrow as pa
from pipeline.finish import finish_run
from pipeline.profile import load_profile, validate
from pipeline.report import funnel

funnel.MAX_VALUES = 2000  # metric values and distributions kept: a uniform sample beyond (reached here)

work, stage, n_units, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
profile = load_profile("default", ["output.formats=[parquet]", "output.report=false", f"run.output_shard_docs={per}"])
units = [f"u{k:04d}" for k in range(n_units)]

def stats(units):  # what a unit's markers hold: a read, a stage with its funnel, metric values
    for u in units:
        yield {"read": {"records": 10, "html_records": 9, "skipped": {"not_html": 1}}}
        yield {"stage": "text_filters", "in": {"document": 9}, "out": {"document": 8},
               "dropped": {"document": {"too_short": 1}}, "metrics": {"text_filters": {"words": list(range(50))}}}

tracemalloc.start()
cfg = validate(profile).run
finish_run(work + "/warm-up", work, stage, units[:10], stats(units[:10]), profile, cfg, [], 0.0)  # lazy imports
base = tracemalloc.get_traced_memory()[0]
tracemalloc.reset_peak()
pool = pa.default_memory_pool()
arrow_base = pool.bytes_allocated()
merged = finish_run(work + "/out", work, stage, units, stats(units), profile, cfg, [], 0.0)
print("RESULT " + json.dumps({"python_peak": tracemalloc.get_traced_memory()[1] - base,
                              "arrow_peak": pool.max_memory() - arrow_base,
                              "documents": merged["summary"]["documents"], "shards": len(merged["outputs"])}))
"""


def _measure(work: str, n_units: int, per: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, work, STAGE, str(n_units), str(per)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))[7:])


def test_finish_memory_is_flat_in_the_number_of_units(tmp_path):
    """10x the units and documents: the driver's peak (Python heap and Arrow) stays that of one shard."""
    docs_per_unit, per, many = 60, 300, 200
    work, _ = _work(tmp_path, [docs_per_unit])
    src = tmp_path / "work" / STAGE / "u0000.parquet"
    for k in range(1, many):  # the same unit under many names: the finish does not look at the content
        (tmp_path / "work" / STAGE / f"u{k:04d}.parquet").write_bytes(src.read_bytes())
    small, large = _measure(work, many // 10, per), _measure(work, many, per)
    assert small["documents"] == docs_per_unit * many // 10 and large["documents"] == docs_per_unit * many
    assert large["shards"] == 10 * small["shards"] == 40
    # holding the dataset grew both ~10x (the old gather: Arrow 0.9 -> 10.3 MB, Python heap 0.9 -> 9.3 MB)
    assert large["arrow_peak"] < 1.5 * small["arrow_peak"] + 2**19, (small, large)
    assert large["python_peak"] < 1.5 * small["python_peak"] + 2**19, (small, large)
