"""The whole pipeline: the embedded sample offline, and a loopback Common Crawl on Ray with kill/resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from obelics.document import HUB_SCHEMA
from tests.conftest import ROOT
from tests.pipeline.cc_server import CommonCrawlStandIn, make_snapshot

OFFLINE = ["images.source=warc", "optout.images=[x_robots]", "optout.documents=[x_robots,meta]"]


def sample_warc() -> Path:
    from obelics.sample import sample_warc_path

    return Path(sample_warc_path())


def digest(out: Path) -> dict:
    """Everything a run publishes, as comparable values (Parquet rows, tar members' hashes, funnel)."""
    rows = []
    for p in sorted((out / "parquet").glob("*.parquet")):
        t = pq.read_table(p)
        assert t.schema.remove_metadata() == HUB_SCHEMA
        rows.extend(t.to_pylist())
    members = []
    for p in sorted((out / "webdataset").glob("*.tar")):
        with tarfile.open(p) as tf:
            for m in tf.getmembers():
                members.append((p.name, m.name, hashlib.sha256(tf.extractfile(m).read()).hexdigest()))
    stats = json.loads((out / "stats.json").read_text())
    return {"rows": rows, "members": members, "stages": stats["stages"], "read": stats.get("read"),
            "summary": {k: v for k, v in stats["summary"].items() if k != "seconds"}}


def wait_until(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """Poll ``ready()`` until it holds or ``proc`` exits (at most ``timeout`` s); whether ``proc`` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            break
        time.sleep(0.05)
    return proc.poll() is None


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL ``proc``'s process group once ``ready()`` holds; returns whether it was still running then."""
    running = wait_until(proc, ready, timeout)
    if running:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return running


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obelics", "run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_sample_run_then_rerun_does_nothing(tmp_path):
    from pipeline.run import run

    out = tmp_path / "out"
    stats = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    s = stats["summary"]
    assert s["documents"] >= 4 and s["images"] >= 8
    for name in ("stats.json", "report.html", "run.json"):
        assert (out / name).exists()
    assert list((out / "parquet").glob("train-*.parquet")) and list((out / "webdataset").glob("shard-*.tar"))
    # every drop has a reason, and the funnel reaches the output
    final = [st for st in stats["stages"] if st["stage"] == "final"][0]
    assert final["out"]["document"] == s["documents"]
    assert any(st["dropped"] for st in stats["stages"])
    # the report draws the filter metrics with their thresholds, and the output distributions
    (metric_stage, values), = stats["metrics"].items()
    assert len(values["stopword_ratio"]) >= 5 and stats["thresholds"][f"{metric_stage}.stopword_ratio"]["min"] > 0
    report = (out / "report.html").read_text()
    assert "Filter metrics" in report and report.count("<svg") >= 5
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert again["summary"] == stats["summary"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # a different plan in the same folder is refused
    with pytest.raises(ValueError, match="another plan"):
        run("obelics-2023", out, [str(sample_warc())], overrides=OFFLINE)
    # ...unless asked to start again then (what `make crawl-shard` does with the sample)
    changed = OFFLINE + ["run.use_ray=false", "dedup.num_partitions=8"]
    third = run("default", out, [str(sample_warc())], overrides=changed, restart_if_changed=True)
    assert (third["summary"]["documents"], third["summary"]["images"]) == (s["documents"], s["images"])
    assert read_plan(out)["profile_data"]["dedup"]["num_partitions"] == 8


def read_plan(out):
    import json

    return json.loads((out / "run.json").read_text())


def test_killed_unit_is_redone_and_nothing_half_written(tmp_path):
    """A unit whose marker is missing (killed mid-write) is redone; temporaries are cleaned."""
    from pipeline.run import run

    out = tmp_path / "out"
    first = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    ref = digest(out)
    # simulate a kill: the last unit stage lost its marker and left a temporary behind; outputs are gone
    last = sorted(p for p in (out / "work").iterdir() if p.is_dir())[-1]
    for marker in last.glob("*.stats.json"):
        marker.unlink()
    (last / ".half-written.parquet.abc.tmp").write_bytes(b"partial")
    (out / "stats.json").unlink()
    for p in (out / "parquet").glob("*"):
        p.unlink()
    second = run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    assert not list(out.rglob(".*.tmp"))
    assert digest(out) == ref
    assert second["summary"]["documents"] == first["summary"]["documents"]


@pytest.mark.slow
def test_loopback_common_crawl_on_ray_kill_resume_and_workers(tmp_path, shared, monkeypatch):
    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")  # the address guard lets the stand-in through
    warcs = [sample_warc(), shared("data", "warc", "ukwa__wikipedia-mona-lisa.warc.gz"),
             shared("data", "warc", "dolma__sample-0000.warc.gz"), shared("data", "warc", "whirlwind__whirlwind.warc.gz")]
    make_snapshot(tmp_path / "cc", "CC-MAIN-2099-01", warcs)
    sets = [x for s in OFFLINE for x in ("--set", s)]
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        common = ["--snapshot", "CC-MAIN-2099-01", "--shard", "0", "--num-shards", "1", "--cc-base-url", base, *sets]
        a = run_cli(*common, "--out", str(tmp_path / "a"), "--workers", "1")
        assert a.returncode == 0, a.stderr[-3000:]
        ref = digest(tmp_path / "a")
        assert ref["summary"]["documents"] > 0 and ref["summary"]["units"] == 4

        b = run_cli(*common, "--out", str(tmp_path / "b"), "--workers", "2")
        assert b.returncode == 0, b.stderr[-3000:]
        assert digest(tmp_path / "b") == ref  # 2 workers give the same output as 1

        # kill mid-run (once the first units are done), then rerun: same output as uninterrupted
        out_c = tmp_path / "c"
        proc = subprocess.Popen([sys.executable, "-m", "obelics", "run", *common, "--out", str(out_c), "--workers", "2"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        killed = kill_when(proc, lambda: len(list((out_c / "work").glob("00-*/*.stats.json"))) >= 1)
        assert killed, "the run finished before it could be killed"
        assert not (out_c / "stats.json").exists()
        c = run_cli(*common, "--out", str(out_c), "--workers", "2")
        assert c.returncode == 0, c.stderr[-3000:]
        assert digest(out_c) == ref


def test_report_command_keeps_a_runs_stats(tmp_path):
    from obelics.cli import main
    from pipeline.run import run

    out = tmp_path / "out"
    run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    before = (out / "stats.json").read_bytes()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "stats.json").read_bytes() == before
    assert "final" in (out / "report.html").read_text()


def test_phash_clusters_reach_the_image_url_pass(tmp_path):
    """default counts near-identical images as one in the image-URL pass: the run computes the clusters."""
    import io

    from PIL import Image
    from skimage import data

    from obelics.config import load_profile
    from pipeline.images.config import ImagesConfig
    from pipeline.images.phash_tasks import read_canonical
    from pipeline.images.table import ImageTable, make_row, rows_to_table
    from pipeline.shuffle import LocalBackend
    from pipeline.stages import _phash_canonical, _with_phash

    img = Image.fromarray(data.astronaut())
    png, jpg = io.BytesIO(), io.BytesIO()
    img.save(png, "PNG")
    img.resize((400, 400)).save(jpg, "JPEG", quality=80)
    other = io.BytesIO()
    Image.fromarray(data.coffee()).save(other, "PNG")
    cfg = ImagesConfig()
    table = ImageTable(tmp_path / "table")
    table.write_part("x", rows_to_table([make_row("http://a/x.png", png.getvalue(), cfg),
                                         make_row("http://b/y.jpg", jpg.getvalue(), cfg),
                                         make_row("http://c/z.png", other.getvalue(), cfg)]))
    work = str(tmp_path / "work")
    canon = read_canonical(_phash_canonical(table, load_profile("default"), work, 4, LocalBackend()))
    assert canon["http://a/x.png"] == canon["http://b/y.jpg"] and "http://c/z.png" not in canon
    assert _phash_canonical(table, load_profile("obelics-2023"), work, 4, LocalBackend()) is None
    # the image-URL decision gets the folder of the units' joined rows, not the mapping
    ctx = _with_phash({"decisions": {"image_table": {"phash": True, "unit_dir": "u"}}})
    assert ctx["phash_unit_dir"] == "u" and "phash_canonical" not in ctx


def test_unreadable_input_is_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    from pipeline.run import run

    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")  # the address guard lets the stand-in through

    snap = make_snapshot(tmp_path / "cc", "CC-MAIN-2099-02", [sample_warc()])
    with CommonCrawlStandIn(tmp_path / "cc") as base:
        inputs = [base + snap[0], base + "crawl-data/CC-MAIN-2099-02/missing.warc.gz"]
        stats = run("default", tmp_path / "out", inputs,
                    overrides=OFFLINE + ["run.use_ray=false", "warc.http_retries=1", "warc.http_backoff=0.01"])
    assert stats["summary"]["documents"] >= 4
    assert stats["read"]["skipped"].get("input_error:FileNotFoundError") == 1


def test_warm_imports_loads_the_reports_modules_in_a_thread():
    """A Ray run imports matplotlib while its stages run, not after them; nothing imports webdataset (torch)."""
    code = ("import sys\nfrom pipeline.run import _warm_imports\n"
            "before = [m in sys.modules for m in ('matplotlib', 'matplotlib.pyplot')]\n"
            "t = _warm_imports()\nt.join()\n"
            "print(before, t.daemon, [m in sys.modules for m in ('matplotlib', 'matplotlib.pyplot')], "
            "t.cpu_seconds > 0.05, 'webdataset' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # the thread's own CPU time is kept (stats.json: cpu.warm_imports_cpu_seconds)
    assert proc.stdout.split("\n")[0] == "[False, False] True [True, True] True False"
