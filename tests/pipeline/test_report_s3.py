"""``obelics report`` and ``obelics publish`` on a run folder in object storage (the loopback S3 server):
the same stats, report and Hub folder as from the same run folder on local disk."""

from __future__ import annotations

import json
import tempfile

from obelics import storage
from obelics.cli import main
from pipeline.publish import build_hub_folder
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture
from tests.pipeline.test_publish import out_dir  # noqa: F401 - the fixture
from tests.pipeline.test_report import shard


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_of_shard_stats_on_s3_equals_the_local_one(s3, out_dir, capsys):  # noqa: F811
    (out_dir / "stats.json").unlink()
    for k in range(2):
        (out_dir / "shards" / f"{k:05d}").mkdir(parents=True)
        (out_dir / "shards" / f"{k:05d}" / "stats.json").write_text(json.dumps(shard(k)))
    s3.make_bucket("bucket")
    s3.upload_tree(out_dir, "bucket", "run/")
    assert main(["report", "s3://bucket/run"]) == 0
    printed = capsys.readouterr()
    assert "| images.merge |" in printed.out
    assert "wrote s3://bucket/run/stats.json and s3://bucket/run/report.html" in printed.err
    assert main(["report", str(out_dir)]) == 0
    assert storage.read_json("s3://bucket/run/stats.json") == json.loads((out_dir / "stats.json").read_text())
    assert storage.read_json("s3://bucket/run/stats.json")["shards"] == 2
    html = storage.read_text("s3://bucket/run/report.html")  # (plots carry random SVG ids: not compared)
    assert "images.merge" in html and "http_404" in html
    assert not [k for k in s3.keys("bucket") if k.endswith(".tmp")]


def test_report_of_a_run_folder_on_s3_keeps_its_stats(s3, out_dir):  # noqa: F811
    (out_dir / "run.json").write_text("{}")
    s3.make_bucket("bucket")
    s3.upload_tree(out_dir, "bucket", "run/")
    before = storage.read_bytes("s3://bucket/run/stats.json")
    assert main(["report", "s3://bucket/run"]) == 0
    assert storage.read_bytes("s3://bucket/run/stats.json") == before  # the run's marker is never replaced
    assert "images.merge" in storage.read_text("s3://bucket/run/report.html")


def test_publish_dry_run_from_s3_equals_the_local_folder(s3, out_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default folder's temporary parent
    (out_dir / "profile.yaml").write_text("name: obelics-2023\n")
    main(["report", str(out_dir)])
    s3.make_bucket("bucket")
    s3.upload_tree(out_dir, "bucket", "run/")
    local = build_hub_folder(out_dir, "org/name", tmp_path / "local")
    assert main(["publish", "s3://bucket/run", "--repo-id", "org/name", "--dry-run", "--folder",
                 str(tmp_path / "remote")]) == 0
    got = _files(tmp_path / "remote")
    assert got == _files(local)
    assert sorted(got) == ["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
                           "report.html", "stats.json"]
    assert "`obelics-2023` profile" in got["README.md"].decode()  # the saved profile.yaml, read from the bucket
    again = build_hub_folder("s3://bucket/run", "org/name", tmp_path / "remote")  # a rerun: same folder
    assert _files(again) == got
    default = build_hub_folder("s3://bucket/run", "org/name")  # no --folder: a new local folder
    assert default.parent == tmp_path and _files(default) == got
