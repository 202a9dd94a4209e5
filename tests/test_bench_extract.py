from __future__ import annotations

import pytest


@pytest.mark.slow
def test_op_in_run_times_the_run_s_extract_op_and_the_op_alone_on_the_same_pages():
    from bench.bench_extract import op_in_run

    r = op_in_run(copies=1, rounds=2)
    assert r["pages"] > 100  # the 4 units of one copy of the shared WARCs, every HTML record
    for mode in ("run", "alone"):
        assert len(r["ms"][mode]) == 2 and all(0 < x < 100 for x in r["ms"][mode])
    assert r["ratios"] == [a / b for a, b in zip(r["ms"]["run"], r["ms"]["alone"])]
    assert 0.3 < r["median_ratio"] < 3  # the same op on the same pages: not another op's CPU, not zero
