"""bench.bench_pipeline's summary of a page's steady CPU by part (no run: rows as steady_rows makes them)."""

from __future__ import annotations

import pytest

from bench.bench_pipeline import STAGE_REST, steady_parts


def test_steady_parts_sum_the_rows_by_part():
    rows = [("00-extract+url_ban+text_filters (rest)", 0.25), ("  extract", 1.5), ("  url_ban", 0.04),
            ("  text_filters", 0.5), ("01-dedup_url", 0.01), ("02-dedup_url.apply (rest)", 0.02),
            ("  dedup_url.apply", 0.03), ("03-dedup_minhash", 0.3), ("04-dedup_minhash.apply (rest)", 0.02),
            ("  dedup_minhash.apply", 0.01), ("05-image_table", 0.4),
            ("06-merge_images+image_filters+optout+nsfw+doc_filters (rest)", 0.1), ("  nsfw", 1.25),
            ("  image_filters", 0.1), ("writers + report (driver)", 0.02)]
    parts = dict(steady_parts([{"row": r, "ms_per_page": v} for r, v in rows]))
    assert parts["extraction"] == pytest.approx(1.5)
    assert parts["NSFW"] == pytest.approx(1.25)
    assert parts["text filters + url_ban"] == pytest.approx(0.54)
    assert parts["image table"] == pytest.approx(0.4)
    assert parts["MinHash decision"] == pytest.approx(0.3)  # its apply is not the decision
    assert parts[STAGE_REST] == pytest.approx(0.25 + 0.02 + 0.02 + 0.1)
    assert parts["the rest"] == pytest.approx(0.01 + 0.03 + 0.01 + 0.1 + 0.02)
    assert sum(parts.values()) == pytest.approx(sum(v for _, v in rows))


def test_report_profile_lists_the_stages_framework_not_the_ops(tmp_path, capsys):
    import cProfile
    import time

    from bench.bench_pipeline import report_profile
    from obelics.document import WebDocument, documents_to_table
    from pipeline.report.funnel import document_flow
    from pipeline.stages import _register_steps  # noqa: F401  (an op's module: not listed)

    docs = [WebDocument(texts=["a b", None], images=[None, "u"], metadata=[None, {}],
                        general_metadata={"url": "https://x.example/"})]
    p = cProfile.Profile(time.process_time)
    p.enable()
    documents_to_table(docs)
    document_flow(docs, "x")
    p.disable()
    p.dump_stats(str(tmp_path / "run.prof"))
    report_profile(tmp_path / "run.prof", 1000)
    out = capsys.readouterr().out
    assert "obelics/document.py:documents_to_table" in out and "report/funnel.py:document_flow" in out
    assert "to_row" not in out  # only the framework's own functions


@pytest.mark.parametrize("item", ["nsfw.amx_min_images=-1", "nsfw.bogus=1"])
def test_a_bad_set_is_refused_before_any_corpus_is_made(item, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "bench.bench_pipeline", "--set", item, "--copies", "1", "--cpus", "1",
                        "--keep-inputs", str(tmp_path / "cache")], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--set:" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and not (tmp_path / "cache").exists()
