"""bench.bench_floor: a run's library inputs recorded and each library call replayed alone on them."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_floor_replays_every_recorded_library_call_of_a_one_copy_run(tmp_path):
    from bench.bench_floor import _FILE, ROWS, measure, table
    from bench.bench_pipeline import make_inputs

    (tmp_path / "in").mkdir()
    inputs = make_inputs(tmp_path / "in", 1, 4)
    r = measure(inputs, 1, ["nsfw.amx_min_images=0"], tmp_path / "m")
    t = table(r)
    rows = {x["row"]: x for x in t["rows"]}
    assert list(rows) == list(ROWS)
    # what the replay called is what the run gave the libraries
    counts, replayed = r["counts"], r["rounds"][0]
    for row, name in _FILE.items():
        assert replayed[row][0] == counts.get(name, 0), row
    assert sum(replayed[row][0] for row in ROWS if row.startswith("PIL ")) == counts["pil"]
    # one lexbor parse a page extracted: at most the pages read, at least the documents made
    extract = next(s for s in r["stats"]["stages"] if s["stage"] == "extract")
    assert extract["out"]["document"] <= counts["lexbor"] <= extract["in"]["document"] == t["pages"]
    # every library the default profile calls on these pages is there, with CPU spent on it
    for row in ("inflate (ISA-L)", "warcio header parse", "lexbor parse", "fastText predict", "SentencePiece encode",
                "KenLM score", "PIL image filters probe", "PIL NSFW decode+resize", "numpy MinHash signatures",
                "pyarrow Parquet write"):
        assert rows[row]["calls"] > 0 and rows[row]["cpu_s"] > 0, row
    nsfw = rows["NSFW onnxruntime"]["calls"] + rows["NSFW AMX (torch oneDNN)"]["calls"]
    assert nsfw > 0  # the AMX path where the CPU has it, else onnxruntime's int8
    assert 0 < t["floor_ms"] == pytest.approx(sum(x["ms_page"] for x in t["rows"]))
    assert t["floor_ms"] < t["whole_ms"]  # the libraries' calls are part of the run's CPU
    assert t["loads_s"] > 0
