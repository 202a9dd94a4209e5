"""Publishing a run's output to the Hugging Face Hub: the folder, its dataset card, the upload.

:func:`build_hub_folder` lays out what the Hub repository will hold:

- ``data/train-XXXXX-of-NNNNN.parquet``: the run's Parquet shards (``OUT_DIR/parquet/*.parquet``,
  hard-linked or copied), in the OBELICS Hub features;
- ``README.md``: the dataset card — YAML front matter (licence, language, ``dataset_info`` with the
  features and sizes, ``configs`` with ``data_files``) then the funnel, the profile and its
  thresholds, and licence, opt-out and content notes;
- ``stats.json`` and ``report.html`` of the run when present.

:func:`publish` uploads that folder with huggingface_hub's resumable large-folder upload
(``HfApi.upload_large_folder`` where the installed version has it; from huggingface_hub 2.x its
``upload_folder`` is itself resumable and commits in batches). ``dry_run`` builds the exact folder and
uploads nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from obelics.storage import write_text_atomic
from pipeline.report.funnel import funnel_markdown, funnel_rows, load_stats, merge_stats
from pipeline.writers.parquet_hub import PARQUET_DIR

log = logging.getLogger(__name__)



def _features_yaml(schema) -> list:
    import datasets

    return datasets.Features.from_arrow_schema(schema)._to_yaml_list()


def _run_stats(out_dir: Path) -> dict:
    if (out_dir / "stats.json").exists():
        with open(out_dir / "stats.json", encoding="utf-8") as f:
            return json.load(f)
    shard_stats = [p for p in out_dir.rglob("stats.json") if p.parent != out_dir and "hub" not in p.parts]
    return merge_stats(load_stats(shard_stats)) if shard_stats else {}


def _profile_text(out_dir: Path, profile: str | None) -> tuple[str | None, str | None]:
    """(profile name, YAML text) from the run's saved ``profile.yaml`` (with its overrides: exact), else
    the named profile as shipped (the run's ``stats.json`` names it)."""
    if (out_dir / "profile.yaml").exists():
        text = (out_dir / "profile.yaml").read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        return data.get("name", profile), text
    if profile:
        from obelics.config import load_profile

        p = load_profile(profile)
        return p.name, yaml.safe_dump({"name": p.name, **p.data}, sort_keys=False)
    return None, None


def _size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]:
        if n < limit:
            return name
    return "100M<n<1B"


def dataset_card(files: list[Path], repo_id: str, stats: dict, profile_name: str | None,
                 profile_yaml: str | None, license: str = "cc-by-4.0", language: str = "en",
                 pretty_name: str = "OBELICS-style interleaved image-text documents") -> str:
    """The README.md (YAML front matter + prose) for Parquet ``files`` already in ``data/``."""
    if not files:
        raise ValueError("no Parquet shards to describe")
    schema = pq.read_schema(files[0]).remove_metadata()
    rows = num_bytes = download = 0
    for f in files:
        md = pq.read_metadata(f)
        rows += md.num_rows
        num_bytes += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        download += f.stat().st_size
    front = {
        "license": license,
        "language": [language],
        "pretty_name": pretty_name,
        "size_categories": [_size_category(rows)],
        "task_categories": ["image-to-text", "text-generation"],
        "tags": ["interleaved", "image-text", "obelics", "common-crawl"],
        "dataset_info": {
            "features": _features_yaml(schema),
            "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": rows}],
            "download_size": download,
            "dataset_size": num_bytes,
        },
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    }
    with_bytes = "image_bytes" in schema.names
    rows_f = funnel_rows(stats) if stats else []
    body = [
        f"# {pretty_name}",
        "",
        f"`{repo_id}`: {rows:,} web documents as interleaved text and images in page order, built from "
        "Common Crawl with the open obelics-toolkit"
        + (f" and the `{profile_name}` profile." if profile_name else "."),
        "",
        "## Data fields",
        "",
        "- `texts` (list of string): one entry per node; the text at text nodes, null at image nodes.",
        "- `images` (list of string): one entry per node; the image URL at image nodes, null at text nodes.",
        "- `metadata` (string, JSON list): one entry per node; null for text, for images a dict with `src`, "
        "`alt_text`, `original_width`, `original_height`, `format` and `sha256` (of the image bytes as fetched).",
        "- `general_metadata` (string, JSON object): the page's `url`, `warc_filename`, `warc_record_offset`, "
        "`warc_record_length` (enough to fetch the page again from Common Crawl).",
    ]
    if with_bytes:
        body.append("- `image_bytes` (list of binary): the image bytes at image nodes (original bytes and "
                    "format unless the profile re-encodes), null at text nodes.")
    body += [
        "",
        "Load it with `datasets.load_dataset(\"" + repo_id + "\", split=\"train\")`.",
        "",
        "## How it was filtered",
        "",
        funnel_markdown(stats) if rows_f else "(no funnel statistics were found for this run)",
        "",
    ]
    if profile_yaml:
        body += ["## Profile and thresholds", "",
                 f"Every rule and threshold of the `{profile_name}` profile used for this build:", "",
                 "```yaml", profile_yaml.rstrip(), "```", ""]
    body += [
        "## Licence",
        "",
        f"The dataset (its structure, texts as extracted and metadata) is released under `{license}`. "
        "The web pages and images remain the property of their authors and are subject to their own "
        "terms; " + ("the image bytes are included for research use." if with_bytes else
                     "images are given as URLs and must be fetched by the user (for example with img2dataset)."),
        "",
        "## Opt-out",
        "",
        "Images were fetched with an identifying User-Agent and dropped when the response carried an "
        "`X-Robots-Tag` with `noai`, `noimageai`, `noindex` or `noimageindex`; any further opt-out checks of "
        "the profile (TDM reservation headers, robots.txt, the Spawning API) are listed in the funnel above. "
        "Opt-out status changes over time: re-check documents and images before reuse. To have content "
        "removed, open a discussion on this repository with the URLs concerned.",
        "",
        "## Content notes",
        "",
        "The documents come from the open web. Despite the NSFW image filter, the text and image filters and "
        "deduplication, they may contain offensive, biased, false or personal content; they reflect the "
        "languages, topics and viewpoints that are common on the crawled web. The "
        "`END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED` string is kept in `texts`, as in OBELICS.",
        "",
    ]
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_hub_folder(out_dir: str | Path, repo_id: str, folder: str | Path | None = None,
                     profile: str | None = None, license: str | None = None) -> Path:
    """Lay out the Hub repository for a run's output in ``folder`` (default ``OUT_DIR/hub``)."""
    from pipeline.writers.config import OutputConfig

    out_dir = Path(out_dir)
    folder = Path(folder) if folder else out_dir / "hub"
    shards = sorted(p for p in (out_dir / PARQUET_DIR).rglob("*.parquet") if not p.name.startswith("."))
    if not shards:
        raise FileNotFoundError(f"no Parquet shards under {out_dir / PARQUET_DIR}")
    data = folder / "data"
    if data.exists():  # a previous build with another shard count: start the data folder again
        for old in data.glob("train-*.parquet"):
            old.unlink()
    files = []
    for i, src in enumerate(shards):
        dst = data / f"train-{i:05d}-of-{len(shards):05d}.parquet"
        _link_or_copy(src, dst)
        files.append(dst)
    stats = _run_stats(out_dir)
    profile = profile or stats.get("profile") or (stats.get("summary") or {}).get("profile")
    profile_name, profile_yaml = _profile_text(out_dir, profile)
    cfg = OutputConfig()
    if profile_name:
        try:
            from obelics.config import load_profile

            cfg = load_profile(profile_name).section("output", OutputConfig)
        except Exception:  # noqa: BLE001 - a saved profile may name a file that is not here
            pass
    card = dataset_card(files, repo_id, stats, profile_name, profile_yaml, license=license or cfg.license,
                        language=cfg.language, pretty_name=cfg.pretty_name)
    write_text_atomic(folder / "README.md", card)
    for name in ("stats.json", "report.html"):
        if (out_dir / name).exists():
            _link_or_copy(out_dir / name, folder / name)
    return folder


def publish(out_dir: str | Path, repo_id: str, dry_run: bool = False, folder: str | Path | None = None,
            profile: str | None = None, private: bool = False, token: str | None = None,
            api=None) -> Path:
    """Build the Hub folder and, unless ``dry_run``, upload it (resumable) to dataset ``repo_id``."""
    folder = build_hub_folder(out_dir, repo_id, folder, profile)
    if dry_run:
        log.info("dry run: the folder to upload is %s", folder)
        return folder
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    upload = getattr(api, "upload_large_folder", None)
    if upload is not None:
        upload(repo_id=repo_id, folder_path=str(folder), repo_type="dataset")
    else:  # huggingface_hub >= 2: upload_folder is the resumable, batched large-folder upload
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="dataset",
                          commit_message="Upload dataset built with obelics-toolkit")
    return folder
