"""Publishing a run's output to the Hugging Face Hub: the folder, its dataset card, the upload.

:func:`build_hub_folder` lays out what the Hub repository will hold, by default in ``OUT_DIR/.hub``: a
hidden folder, so ``datasets.load_dataset(OUT_DIR)`` (which skips hidden folders) still reads the run's
Parquet once and not the copy as well:

- ``data/train-XXXXX-of-NNNNN.parquet``: the run's Parquet shards (``OUT_DIR/parquet/*.parquet``,
  hard-linked or copied), in the OBELICS Hub features (config ``default``);
- ``README.md``: the dataset card, built with huggingface_hub's ``DatasetCard`` / ``DatasetCardData`` from
  the run's resolved profile (``OUT_DIR/profile.yaml``: run-time ``--set`` overrides included) and its
  sources (``run.json``: local WARCs or Common Crawl snapshots; images from the WARCs or downloaded):
  front matter with ``configs`` (the ``default`` config: ``data/train-*``, so each file is read once)
  and ``dataset_info``, then the funnel, the profile and licence, opt-out and content notes;
- ``stats.json`` and ``report.html`` of the run when present.

The WebDataset shards are not published: ``datasets`` loads one format per repository (every config of a
repository goes through the builder its files infer), and the Parquet is the Hub's own; with
``output.embed_images: true`` it carries the images as ``Sequence(Image())``.

:func:`publish` uploads that folder with huggingface_hub's resumable large-folder upload
(``HfApi.upload_large_folder`` where the installed version has it; from huggingface_hub 2.x its
``upload_folder`` is itself resumable and commits in batches). ``dry_run`` builds the exact folder and
uploads nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from obelics import storage
from obelics.storage import write_text_atomic
from pipeline.report.funnel import funnel_markdown, funnel_rows, load_stats, merge_stats
from pipeline.writers.parquet_hub import PARQUET_DIR

log = logging.getLogger(__name__)



HUB_FOLDER = ".hub"  # inside OUT_DIR, hidden: load_dataset(OUT_DIR) does not read it


def _type_yaml(t) -> dict:
    """The card's YAML for one Arrow type of our shards (the Hub's ``dataset_info.features`` syntax);
    written here because ``datasets`` has no public call for it."""
    import pyarrow as pa

    from pipeline.writers.parquet_hub import IMAGE_STRUCT

    if t == IMAGE_STRUCT:
        return {"dtype": "image"}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _type_yaml(t.value_type)
        return {"list": inner["dtype"]} if set(inner) == {"dtype"} else {"list": inner}
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_type_yaml(f.type)} for f in t]}
    names = {pa.string(): "string", pa.large_string(): "large_string", pa.binary(): "binary", pa.int64(): "int64"}
    if t not in names:
        raise ValueError(f"no card type for {t}")
    return {"dtype": names[t]}


def _features_yaml(schema) -> list:
    return [{"name": f.name, **_type_yaml(f.type)} for f in schema]


SNAPSHOT = re.compile(r"crawl-data/(CC-MAIN-\d{4}-\d{2})/")


def run_sources(out_dir: str | Path, output_profile: dict | None) -> dict:
    """Where a run's data came from: ``{"snapshots": [...], "common_crawl_files", "local_files",
    "image_source"}`` from ``run.json`` and the resolved profile (``None`` where not known)."""
    inputs = []
    plan = storage.join(os.fspath(out_dir), "run.json")
    if storage.exists(plan):
        inputs = storage.read_json(plan).get("inputs") or []
    snaps = sorted({m.group(1) for i in inputs if (m := SNAPSHOT.search(str(i)))})
    n_cc = sum(1 for i in inputs if SNAPSHOT.search(str(i)) and "://" in str(i))
    images = ((output_profile or {}).get("images") or {}).get("source")
    optout = (output_profile or {}).get("optout") or {}
    checks = None
    if "optout" in (output_profile or {}):
        checks = {"images": list(optout.get("images") or []), "documents": list(optout.get("documents") or [])}
        if optout.get("enabled") is False:
            checks = {"images": [], "documents": []}
    return {"snapshots": snaps, "common_crawl_files": n_cc, "local_files": len(inputs) - n_cc,
            "image_source": images, "inputs": len(inputs), "optout": checks}


def _run_stats(out_dir: str) -> dict:
    from pipeline.report import shard_stats_files

    own = storage.join(out_dir, "stats.json")
    if storage.exists(own):
        return storage.read_json(own)
    shard_stats = shard_stats_files(out_dir)
    return merge_stats(load_stats(shard_stats)) if shard_stats else {}


def _profile_text(out_dir: str, profile: str | None) -> tuple[str | None, str | None, dict]:
    """(profile name, YAML text, data) of the run's saved ``profile.yaml`` (the resolved profile, overrides
    included: exact), else of the named profile as shipped (the run's ``stats.json`` names it)."""
    saved = storage.join(out_dir, "profile.yaml")
    if storage.exists(saved):
        text = storage.read_text(saved)
        data = yaml.safe_load(text) or {}
        return data.get("name", profile), text, data
    if profile:
        from obelics.config import load_profile

        p = load_profile(profile)
        data = {"name": p.name, **p.data}
        return p.name, yaml.safe_dump(data, sort_keys=False), data
    return None, None, {}


def _output_config(data: dict):
    """The ``output`` section of a resolved profile (a saved one may hold keys of an older version)."""
    import dataclasses

    from pipeline.writers.config import OutputConfig

    section = data.get("output") or {}
    known = {f.name for f in dataclasses.fields(OutputConfig)}
    return OutputConfig(**{k: v for k, v in section.items() if k in known})


def _size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]:
        if n < limit:
            return name
    return "100M<n<1B"


def _sources_text(src: dict, with_bytes: bool) -> tuple[str, str]:
    """(where the pages came from, how the images were obtained) for the card, from :func:`run_sources`."""
    if src.get("snapshots"):
        pages = (f"Common Crawl snapshot(s) {', '.join(src['snapshots'])} ({src['common_crawl_files']:,} WARC "
                 "file(s)" + (f", plus {src['local_files']:,} local WARC file(s)" if src.get("local_files") else "")
                 + ")")
    elif src.get("inputs"):
        pages = f"{src['inputs']:,} local WARC file(s)"
    else:
        pages = "web crawl WARC files"
    how = {"warc": "Images were read from the image records of the input WARC files (nothing was fetched "
                   "from the web).",
           "web": "Images were downloaded with img2dataset under an identifying User-Agent, honouring "
                  "`X-Robots-Tag` (`noai`, `noimageai`, `noindex`, `noimageindex`)."}.get(
        src.get("image_source"), "How the images were obtained is not recorded in this run's profile.")
    if not with_bytes:
        how += " The images themselves are given as URLs."
    checks = src.get("optout")
    if checks is not None:
        how += (" Opt-out checks of this build: on images " + (", ".join(f"`{c}`" for c in checks["images"]) or "none")
                + "; on documents " + (", ".join(f"`{c}`" for c in checks["documents"]) or "none") + ".")
    return pages, how


def dataset_card(files: list[Path], repo_id: str, stats: dict, profile_name: str | None,
                 profile_yaml: str | None, output=None, sources: dict | None = None) -> str:
    """The README.md for Parquet ``files`` in ``data/``, built with huggingface_hub's ``DatasetCard``:
    ``output`` is the run's resolved ``output`` section (licence, language, name), ``sources`` its
    :func:`run_sources`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from pipeline.writers.config import OutputConfig

    output = output or OutputConfig()
    sources = sources or {}
    if not files:
        raise ValueError("no Parquet shards to describe")
    schema = pq.read_schema(files[0])
    rows = num_bytes = download = 0
    for f in files:
        md = pq.read_metadata(f)
        rows += md.num_rows
        num_bytes += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        download += f.stat().st_size
    configs = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    info = {"features": _features_yaml(schema),
            "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": rows}],
            "download_size": download, "dataset_size": num_bytes}
    tags = ["interleaved", "image-text", "obelics"] + (["common-crawl"] if sources.get("snapshots") else [])
    data = DatasetCardData(license=output.license, language=[output.language], pretty_name=output.pretty_name,
                           size_categories=[_size_category(rows)],
                           task_categories=["image-to-text", "text-generation"], tags=tags,
                           configs=configs, dataset_info=info)
    with_bytes = "embedded_images" in schema.names
    pages, how_images = _sources_text(sources, with_bytes)
    rows_f = funnel_rows(stats) if stats else []
    body = [
        f"# {output.pretty_name}",
        "",
        f"`{repo_id}`: {rows:,} web documents as interleaved text and images in page order, built from "
        f"{pages} with the open obelics-toolkit"
        + (f" and the `{profile_name}` profile." if profile_name else "."),
        "",
        "## Data fields",
        "",
        "- `texts` (list of string): one entry per node; the text at text nodes, null at image nodes.",
        "- `images` (list of string): one entry per node; the image URL at image nodes, null at text nodes.",
        "- `metadata` (string, JSON list): one entry per node; null for text, for images a dict with `src`, "
        "`alt_text`, `original_width`, `original_height`, `format` and `sha256` (of the image bytes as fetched).",
        "- `general_metadata` (string, JSON object): the page's `url`, `warc_filename`, `warc_record_offset`, "
        "`warc_record_length` (enough to fetch the page again from its WARC).",
    ]
    if with_bytes:
        body.append("- `embedded_images` (list of image): the image at image nodes (original bytes and "
                    "format unless the profile re-encodes), null at text nodes and where no bytes were kept.")
    body += ["", f"Load it with `datasets.load_dataset(\"{repo_id}\", split=\"train\")`."]
    body += [
        "",
        "## How it was filtered",
        "",
        funnel_markdown(stats) if rows_f else "(no funnel statistics were found for this run)",
        "",
    ]
    if profile_yaml:
        body += ["## Profile and thresholds", "",
                 f"Every rule and threshold of the `{profile_name}` profile as this build ran it (command-line "
                 "overrides included):", "", "```yaml", profile_yaml.rstrip(), "```", ""]
    body += [
        "## Licence",
        "",
        f"The dataset (its structure, texts as extracted and metadata) is released under `{output.license}`. "
        "The web pages and images remain the property of their authors and are subject to their own "
        "terms; " + ("the images are included for research use." if with_bytes else
                     "images are given as URLs and must be fetched by the user (for example with img2dataset)."),
        "",
        "## Opt-out",
        "",
        how_images + " What they dropped is in the funnel above. Opt-out status changes over time: "
        "re-check documents and images before reuse. To have content removed, open a discussion on this "
        "repository with the URLs concerned.",
        "",
        "## Content notes",
        "",
        "The documents come from the open web. Despite the NSFW image filter, the text and image filters and "
        "deduplication, they may contain offensive, biased, false or personal content; they reflect the "
        "languages, topics and viewpoints that are common on the crawled web. The "
        "`END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED` string is kept in `texts`, as in OBELICS.",
        "",
    ]
    return str(DatasetCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(body)))


def _link_or_copy(src: str | Path, dst: Path) -> None:
    """``src`` (a local file: hard-linked or copied; an object: downloaded) at the local path ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if storage.is_remote(src):
        if dst.exists() and dst.stat().st_size == storage.size(src):  # a rerun: already downloaded
            return
        with storage.open_input(src) as f, storage.atomic_writer(dst) as out:
            shutil.copyfileobj(f, out, 2**22)
        return
    src = Path(src)
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
    """Lay out the Hub repository for a run's output in ``folder`` (default ``OUT_DIR/.hub``).

    ``out_dir`` may be on object storage (``s3://bucket/run``): the folder is then local (default a new
    temporary folder) and the shards are downloaded into it (a rerun keeps those already there)."""
    out_dir = os.fspath(out_dir)
    if folder:
        folder = Path(folder)
    elif storage.is_remote(out_dir):
        folder = Path(tempfile.mkdtemp(prefix="obelics-hub-"))
    else:
        folder = Path(out_dir) / HUB_FOLDER
    parquet = storage.join(out_dir, PARQUET_DIR)
    shards = [p for p in storage.walk_files(parquet) if p.endswith(".parquet") and not storage.basename(p).startswith(".")]
    if not shards:
        raise FileNotFoundError(f"no Parquet shards under {parquet}")
    for old in (folder / "data").glob("train-*.parquet"):  # a previous build with other shards: start again
        old.unlink()
    files = []
    for i, src in enumerate(shards):
        dst = folder / "data" / f"train-{i:05d}-of-{len(shards):05d}.parquet"
        _link_or_copy(src, dst)
        files.append(dst)
    stats = _run_stats(out_dir)
    profile = profile or stats.get("profile") or (stats.get("summary") or {}).get("profile")
    profile_name, profile_yaml, profile_data = _profile_text(out_dir, profile)
    output = _output_config(profile_data)
    if license:
        output.license = license
    card = dataset_card(files, repo_id, stats, profile_name, profile_yaml, output,
                        run_sources(out_dir, profile_data))
    write_text_atomic(folder / "README.md", card)
    for name in ("stats.json", "report.html"):
        if storage.exists(storage.join(out_dir, name)):
            _link_or_copy(storage.join(out_dir, name), folder / name)
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
