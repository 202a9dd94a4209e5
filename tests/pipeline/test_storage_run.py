"""A whole run with its work folder and outputs on object storage (the loopback S3 server).

The dataset written to ``s3://bucket/sample`` must equal the local run's (Parquet rows, WebDataset
members, funnel), also after a kill and a rerun, and ``datasets`` must load the Parquet from there
through fsspec.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from obelics import storage
from tests.conftest import ROOT
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture
from tests.pipeline.test_run import OFFLINE, digest, kill_when, run_cli, sample_warc


def mirror(location: str, dest: Path) -> Path:
    """Copy every object under ``location`` to the local folder ``dest`` (to compare with a local run)."""
    prefix = location.rstrip("/") + "/"
    for obj in storage.walk_files(location):
        target = dest / obj[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(obj))
    return dest


def load_with_datasets(location: str, cache: Path) -> list[dict]:
    """The run's Parquet loaded by ``datasets`` straight from object storage (fsspec, storage_options)."""
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=storage.join(location, "parquet", "*.parquet"), split="train",
                      storage_options=storage.storage_options(location), cache_dir=str(cache))
    return ds.to_list()


def parquet_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted((out / "parquet").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_run_on_s3_equals_the_local_run(s3, tmp_path, monkeypatch):  # noqa: F811
    """In process, without Ray units: every work file, marker and output goes to the bucket."""
    from pipeline.run import run

    monkeypatch.chdir(tmp_path)  # a stray local "s3:" folder would show up here
    overrides = OFFLINE + ["run.use_ray=false"]
    local = run("default", tmp_path / "local", [str(sample_warc())], overrides=overrides)
    s3.make_bucket("bucket")
    remote = run("default", "s3://bucket/sample", [str(sample_warc())], overrides=overrides)
    assert remote["summary"] == {**local["summary"], "seconds": remote["summary"]["seconds"]}
    assert not (tmp_path / "s3:").exists()
    keys = s3.keys("bucket", "sample/")
    assert "sample/stats.json" in keys and "sample/run.json" in keys and "sample/report.html" in keys
    assert not [k for k in keys if k.endswith(".tmp")] and s3.open_uploads("bucket") == []
    assert digest(mirror("s3://bucket/sample", tmp_path / "mirror")) == digest(tmp_path / "local")
    # done is done: a rerun finds the marker and writes nothing
    before = {o["Key"]: o["ETag"] for o in s3.client.list_objects_v2(Bucket="bucket")["Contents"]}
    again = run("default", "s3://bucket/sample", [str(sample_warc())], overrides=overrides)
    assert again["summary"] == remote["summary"]
    assert {o["Key"]: o["ETag"] for o in s3.client.list_objects_v2(Bucket="bucket")["Contents"]} == before
    rows = load_with_datasets("s3://bucket/sample", tmp_path / "hf")
    assert rows == parquet_rows(tmp_path / "local") and rows


@pytest.mark.slow
def test_sample_config_on_s3_killed_and_rerun_equals_the_local_run(s3, tmp_path, monkeypatch):  # noqa: F811
    """``obelics run configs/run/sample.yaml --out s3://bucket/sample``, killed mid-run and rerun, gives
    the local run's dataset."""
    sample_warc()  # build/sample/sample.warc.gz, which the config names
    config = str(ROOT / "configs" / "run" / "sample.yaml")
    local = run_cli(config, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-3000:]
    s3.make_bucket("bucket")
    out = "s3://bucket/sample"
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "obelics", "run", config, "--out", out], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    killed = kill_when(proc, lambda: any(k.endswith(".stats.json") for k in s3.keys("bucket", "sample/work/")))
    log.close()
    assert killed, "the run finished before it could be killed:\n" + (tmp_path / "killed.log").read_text()[-3000:]
    assert not storage.exists(out + "/stats.json")
    again = run_cli(config, "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert digest(mirror(out, tmp_path / "mirror")) == digest(tmp_path / "local")
    assert not [k for k in s3.keys("bucket") if k.endswith(".tmp")]
    assert load_with_datasets(out, tmp_path / "hf") == parquet_rows(tmp_path / "local")
