"""Readers for the pipeline's shards: WebDataset tars and Parquet files, web documents and pairs.

Every reader yields *samples* one at a time from one shard, so a stream can record (shard, offset)
and resume exactly. A sample becomes a list of nodes ``("text", str)`` / ``("image", bytes)``; image
nodes whose bytes are missing are dropped (and counted).
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections import Counter
from collections.abc import Iterator

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")


def expand_shards(spec: str | list[str]) -> list[str]:
    """Shard paths from a directory, a glob, a list, or ``pipe:`` / brace URLs (left to webdataset)."""
    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if item.startswith(("pipe:", "http://", "https://", "s3://")) or "{" in item:
            out.append(item)
        elif os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "**", "*.tar"), recursive=True)
                           + glob.glob(os.path.join(item, "**", "*.parquet"), recursive=True)
                           + glob.glob(os.path.join(item, "**", "*.jsonl"), recursive=True))
            out.extend(found)
        elif any(c in item for c in "*?["):
            out.extend(sorted(glob.glob(item)))
        else:
            out.append(item)
    if not out:
        raise FileNotFoundError(f"no shards found for {spec!r}")
    return out


def iter_shard(path: str, skip: int = 0) -> Iterator[dict]:
    """Raw samples of one shard (WebDataset tar or Parquet), skipping the first ``skip``."""
    if path.endswith(".parquet"):
        yield from _iter_parquet(path, skip)
    elif path.endswith((".json", ".jsonl")):  # dialogue files (instruction tuning, train/instruct.py)
        yield from iter_records(path, skip)
    else:
        yield from _iter_tar(path, skip)


def _iter_tar(path: str, skip: int) -> Iterator[dict]:
    import webdataset as wds

    # No decoding here: members stay bytes; images are decoded once, when a batch is built.
    # Ranks are split by PackedStream itself (by shard or by document), so webdataset must not split.
    ds = wds.WebDataset(path, shardshuffle=False, empty_check=False, nodesplitter=_all_urls,
                        workersplitter=_all_urls)
    for i, sample in enumerate(ds):
        if i < skip:
            continue
        yield sample


def _json_records(path: str) -> Iterator[dict]:
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
        return
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and "annotations" in data:  # LRV
        data = data["annotations"]
    elif isinstance(data, dict) and "data" in data and isinstance(data["data"], dict):  # MIMIC-IT
        data = [{"id": k, **v} for k, v in data["data"].items()]
    yield from data


def iter_records(path: str, skip: int = 0) -> Iterator[dict]:
    """Raw records of a JSON / JSONL file, skipping the first ``skip`` (the stream's resume offset)."""
    for i, rec in enumerate(_json_records(path)):
        if i >= skip:
            yield {"__record__": rec, "__key__": f"{os.path.basename(path)}:{i}"}


def _all_urls(urls):
    yield from urls


def _iter_parquet(path: str, skip: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    i = 0
    for batch in pf.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            if i >= skip:
                yield {"__parquet__": row, "__key__": row.get("doc_id") or f"{os.path.basename(path)}:{i}"}
            i += 1


def sample_to_nodes(sample: dict, kind: str, stats: Counter) -> tuple[str, list[tuple[str, object]]]:
    """(doc_id, nodes) for a raw sample. ``kind`` is ``webdoc`` or ``pairs``."""
    if "__parquet__" in sample:
        return _parquet_nodes(sample, kind, stats)
    key = sample.get("__key__", "")
    if kind == "pairs":
        img = next((sample[e] for e in IMAGE_EXTS if sample.get(e)), None)
        text = sample.get("txt")
        if text is None and sample.get("json"):
            meta = json.loads(sample["json"])
            text = meta.get("caption") or meta.get("text")
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        nodes = []
        if img is None:
            stats["image_missing"] += 1
        else:
            nodes.append(("image", img))
        if text:
            nodes.append(("text", text))
        return key, nodes
    doc = json.loads(sample["json"])
    by_pos = {}
    if sample.get("images.mp"):  # the pipeline's layout: one msgpack list of image bytes aligned with the nodes
        import msgpack

        by_pos = dict(enumerate(msgpack.unpackb(sample["images.mp"], raw=False)))
    for name, value in sample.items():  # shards of older runs: one ``img{pos:04d}.{ext}`` member per image
        if name.startswith("img") and "." in name:
            stem = name.split(".", 1)[0][3:]
            if stem.isdigit():
                by_pos[int(stem)] = value
    nodes = []
    for pos, (text, image) in enumerate(zip(doc.get("texts") or [], doc.get("images") or [])):
        if text is not None:
            nodes.append(("text", text))
        elif image is not None:
            data = by_pos.get(pos)
            if data:
                nodes.append(("image", data))
            else:
                stats["image_missing"] += 1
    return str(doc.get("doc_id") or key), nodes


def _parquet_nodes(sample: dict, kind: str, stats: Counter) -> tuple[str, list]:
    row = sample["__parquet__"]
    key = sample["__key__"]
    if kind == "pairs":
        img = row.get("image")
        if isinstance(img, dict):
            img = img.get("bytes")
        nodes = [("image", img)] if img else []
        if not img:
            stats["image_missing"] += 1
        if row.get("text"):
            nodes.append(("text", row["text"]))
        return key, nodes
    blobs = row.get("embedded_images") or row.get("image_bytes") or []  # Image structs, or bytes
    nodes = []
    for pos, (text, image) in enumerate(zip(row.get("texts") or [], row.get("images") or [])):
        if text is not None:
            nodes.append(("text", text))
        elif image is not None:
            data = image.get("bytes") if isinstance(image, dict) else (blobs[pos] if pos < len(blobs) else None)
            if isinstance(data, dict):  # ``embedded_images``: datasets' Image struct {bytes, path}
                data = data.get("bytes")
            if data:
                nodes.append(("image", data))
            else:
                stats["image_missing"] += 1
    return str(key), nodes


def image_ok(data: bytes) -> bool:
    """Cheap header check that the bytes are an image PIL can open."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size[0] > 0 and im.size[1] > 0
    except Exception:
        return False
