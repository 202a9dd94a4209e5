"""Publishing: the dry-run folder loads with `datasets` through its card; the upload never hits the Hub."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.publish import build_hub_folder, publish
from pipeline.writers.parquet_hub import write_parquet_shard
from tests.pipeline.test_report import shard
from tests.pipeline.test_writers import merged_docs


@pytest.fixture
def out_dir(tmp_path):
    out = tmp_path / "out"
    table = merged_docs(6)
    write_parquet_shard(table.slice(0, 4), out / "parquet" / "shard-00000.parquet")
    write_parquet_shard(table.slice(4), out / "parquet" / "shard-00001.parquet")
    (out / "stats.json").write_text(json.dumps(shard(0)))
    return out


def test_dry_run_folder_loads_through_its_card(out_dir):
    import datasets

    folder = publish(out_dir, "someone/obelics-sample", dry_run=True, profile="default")
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "cc-by-4.0"
    assert front["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert front["dataset_info"]["splits"][0]["num_examples"] == 6
    assert [f["name"] for f in front["dataset_info"]["features"]] == ["images", "metadata", "general_metadata", "texts"]
    assert "## Profile and thresholds" in card and "text_filters" in card and "## Opt-out" in card
    assert "http_404" in card  # the funnel
    ds = datasets.load_dataset(str(folder), split="train")
    assert ds.num_rows == 6
    assert set(ds.features) == {"images", "metadata", "general_metadata", "texts"}


def test_upload_uses_the_resumable_folder_upload(out_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")  # the CLI checks a token is there before building anything
    monkeypatch.setattr("pipeline.preflight.check_network", lambda targets, timeout=3.0: None)  # the Hub: faked
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_large_folder(self, **kw):
            calls.append(("upload_large_folder", kw))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    from obelics.cli import main

    assert main(["publish", str(out_dir), "--repo-id", "org/name"]) == 0
    assert calls[0][0] == "create_repo" and calls[0][2]["repo_type"] == "dataset"
    assert calls[1][0] == "upload_large_folder"
    assert calls[1][1]["repo_id"] == "org/name" and calls[1][1]["repo_type"] == "dataset"
    assert (out_dir / ".hub" / "README.md").exists()


def test_falls_back_to_upload_folder_on_huggingface_hub_2(out_dir):
    calls = []

    class Api2:  # huggingface_hub >= 2: upload_folder is the resumable large upload
        def create_repo(self, *a, **kw):
            pass

        def upload_folder(self, **kw):
            calls.append(kw)

    publish(out_dir, "org/name", api=Api2())
    assert calls and calls[0]["folder_path"].endswith(".hub")


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_hub_folder(tmp_path, "org/name")


def test_cli_report_then_dry_run(out_dir, capsys):
    from obelics.cli import main

    (out_dir / "stats.json").unlink()
    (out_dir / "shards" / "00000").mkdir(parents=True)
    (out_dir / "shards" / "00000" / "stats.json").write_text(json.dumps(shard(0)))
    assert main(["report", str(out_dir)]) == 0
    assert "| images.merge |" in capsys.readouterr().out
    assert (out_dir / "report.html").exists() and (out_dir / "stats.json").exists()
    assert main(["publish", str(out_dir), "--repo-id", "org/name", "--dry-run", "--folder", str(out_dir / "f")]) == 0
    assert (out_dir / "f" / "report.html").exists() and (out_dir / "f" / "stats.json").exists()
    assert "http_404 [image] (30)" in (out_dir / "f" / "README.md").read_text()


def test_card_takes_the_profile_named_in_the_run_stats(out_dir):
    stats = json.loads((out_dir / "stats.json").read_text())
    stats["summary"] = {"profile": "obelics-2023"}
    (out_dir / "stats.json").write_text(json.dumps(stats))
    card = (build_hub_folder(out_dir, "org/name") / "README.md").read_text()
    assert "`obelics-2023` profile" in card and "reencode: true" in card


def test_card_says_what_the_run_did_common_crawl_and_downloaded_images(out_dir):
    """The card follows the run's resolved profile (its --set overrides included) and its real sources."""
    from huggingface_hub import DatasetCard

    from obelics.config import load_profile

    profile = load_profile("default", ["output.license=odc-by", "images.source=web", "optout.documents=[x_robots]"])
    (out_dir / "profile.yaml").write_text(yaml.safe_dump({"name": profile.name, **profile.data}, sort_keys=False))
    cc = "https://data.commoncrawl.org/crawl-data/CC-MAIN-2023-06/segments/1/warc/x-{}.warc.gz"
    (out_dir / "run.json").write_text(json.dumps({"inputs": [cc.format(0), cc.format(1)], "profile": "default"}))
    card = DatasetCard.load(build_hub_folder(out_dir, "org/name") / "README.md")
    assert card.data.license == "odc-by"
    assert "Common Crawl snapshot(s) CC-MAIN-2023-06 (2 WARC file(s))" in card.text
    assert "common-crawl" in card.data.tags
    assert "downloaded with img2dataset under an identifying User-Agent" in card.text
    assert "on documents `x_robots`." in card.text
    (out_dir / "run.json").write_text(json.dumps({"inputs": ["/data/a.warc.gz"], "profile": "default"}))
    card = DatasetCard.load(build_hub_folder(out_dir, "org/name") / "README.md")
    assert "1 local WARC file(s)" in card.text and "Common Crawl" not in card.text.split("## How it was")[0]
    assert "common-crawl" not in (card.data.tags or [])

