"""Systemic loss (pipeline/loss.py): a run that loses its input to errors stops loudly and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.loss import describe, error_drops, systemic
from pipeline.run_config import RunConfig
from tests.pipeline.test_run import sample_warc

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = RunConfig().error_reasons


def _stage(name, n_in, dropped, level="document"):
    return {"stage": name, "in": {level: n_in}, "out": {}, "dropped": {level: dropped}}


def test_error_drops_sum_units_and_keep_only_error_reasons():
    stats = [_stage("optout_documents", 10, {"optout:error:tdmrep": 8, "optout:robots": 1}),
             _stage("optout_documents", 18, {"optout:error:tdmrep": 20}),
             _stage("merge_images", 100, {"dns": 30, "http_404": 40, "http_503": 5}, "image"),
             _stage("text_filters", 50, {"number_words": 49}),
             {"read": {"records": 3}}]
    drops = error_drops(stats, PATTERNS)
    assert [(d["stage"], d["level"], d["dropped"], d["in"]) for d in drops] == [
        ("optout_documents", "document", 28, 28), ("merge_images", "image", 35, 100)]
    assert drops[0]["reasons"] == {"optout:error:tdmrep": 28}  # a real opt-out is not an error
    assert drops[1]["reasons"] == {"dns": 30, "http_503": 5}   # a 404 is the page's fault, a 503 the service's
    over = systemic(drops, max_share=0.5, min_drops=10)
    assert [d["stage"] for d in over] == ["optout_documents"]
    assert describe(over[0]).startswith("stage optout_documents lost 28 of 28 document(s) (100%) to errors")
    assert systemic(drops, max_share=0.5, min_drops=29) == []  # a tiny run is not systemic


def _run(out, *extra):
    args = ["run", "--warc", str(sample_warc()), "--out", str(out), "--set", "run.use_ray=false",
            "--set", "images.source=warc", "--set", "optout.images=[x_robots]",
            # TDMRep of the sample's host (sample.obelics.example: never resolves): every document errors
            "--set", "optout.documents=[x_robots,meta,tdmrep]", "--set", "run.min_error_drops=1",
            "--set", "run.preflight_network=false", *extra]
    return subprocess.run([sys.executable, "-m", "obelics", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_a_run_that_loses_everything_to_errors_stops_loudly(tmp_path):
    out = tmp_path / "fail"
    proc = _run(out)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("obelics run: stopped: stage optout_documents lost 6 of 6 document(s) (100%)"), last
    assert "optout:error:tdmrep 6" in last and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not (out / "stats.json").exists()  # stopped: no dataset, no success marker

    warned = _run(tmp_path / "warn", "--set", "run.on_systemic_loss=warn")
    assert warned.returncode == 0, warned.stderr[-2000:]
    assert json.loads(warned.stdout)["documents"] == 0  # stdout is the JSON summary alone
    assert "WARNING obelics.run: systemic loss: stage optout_documents lost 6 of 6" in warned.stderr
    stats = json.loads((tmp_path / "warn" / "stats.json").read_text())
    loss = stats["systemic_loss"]
    assert loss["policy"] == "warn" and [s["stage"] for s in loss["stages"]] == ["optout_documents"]
    assert {"stage": "optout_documents", "level": "document", "dropped": 6, "in": 6, "share": 1.0,
            "reasons": {"optout:error:tdmrep": 6}} in stats["errors"]
