"""Test shards in the pipeline writer's layout (WebDataset + Parquet), with real photos from skimage."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")


def photo_bytes(k: int, fmt: str = "JPEG", size: int = 64) -> bytes:
    import skimage.data
    from PIL import Image

    arr = getattr(skimage.data, _PHOTOS[k % len(_PHOTOS)])()
    im = Image.fromarray(arr).convert("RGB").resize((size + 7 * (k % 3), size))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def prose(n: int, seed: int) -> list[str]:
    import pydoc_data.topics as topics

    words = " ".join(list(topics.topics.values())[:40]).split()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(len(words) - 60)
        out.append(" ".join(words[start : start + rng.randrange(8, 40)]))
    return out


def make_docs(n_docs: int, seed: int = 0, missing_every: int = 0) -> list[dict]:
    """Interleaved documents: texts/images parallel lists; image bytes by node position."""
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        n_nodes = rng.randrange(3, 8)
        texts, images, blobs = [], [], {}
        for pos in range(n_nodes):
            if pos % 2 == 1 or (pos == 0 and rng.random() < 0.5):
                url = f"https://example.com/{d}/{pos}.jpg"
                texts.append(None)
                images.append(url)
                if not (missing_every and (d * 7 + pos) % missing_every == 0):
                    blobs[pos] = photo_bytes(d + pos)
            else:
                texts.append(prose(1, seed * 1000 + d * 10 + pos)[0])
                images.append(None)
        docs.append({"doc_id": f"doc{seed}-{d:05d}", "texts": texts, "images": images, "blobs": blobs})
    return docs


def write_webdataset(out_dir: Path, docs: list[dict], n_shards: int = 1, legacy: bool = False) -> list[Path]:
    """``docs`` as WebDataset shards in the pipeline's sample layout, written here by hand (a reference for the
    writer): ``json`` plus ``images.mp``, a msgpack list of image bytes aligned with the nodes. ``legacy``:
    the layout of older runs, one ``img{pos:04d}.jpg`` member per image."""
    import msgpack
    import webdataset as wds

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    per = (len(docs) + n_shards - 1) // n_shards
    for s in range(n_shards):
        p = out_dir / f"shard-{s:05d}.tar"
        with wds.TarWriter(str(p)) as w:
            for doc in docs[s * per : (s + 1) * per]:
                sample = {"__key__": doc["doc_id"],
                          "json": json.dumps({"texts": doc["texts"], "images": doc["images"], "metadata": "[]",
                                              "general_metadata": "{}", "doc_id": doc["doc_id"]}).encode()}
                if legacy:
                    for pos, b in doc["blobs"].items():
                        sample[f"img{pos:04d}.jpg"] = b
                else:
                    sample["images.mp"] = msgpack.packb([doc["blobs"].get(i) for i in range(len(doc["texts"]))])
                w.write(sample)
        paths.append(p)
    return paths


def write_pairs(out_dir: Path, n: int, seed: int = 0) -> Path:
    import webdataset as wds

    out_dir.mkdir(parents=True, exist_ok=True)
    p = out_dir / "pairs-00000.tar"
    caps = prose(n, seed + 99)
    with wds.TarWriter(str(p)) as w:
        for i in range(n):
            w.write({"__key__": f"pair{i:05d}", "jpg": photo_bytes(i), "txt": caps[i]})
    return p


def write_parquet(path: Path, docs: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"texts": [d["texts"] for d in docs], "images": [d["images"] for d in docs],
            "metadata": ["[]"] * len(docs), "general_metadata": ["{}"] * len(docs),
            "doc_id": [d["doc_id"] for d in docs],
            "image_bytes": [[d["blobs"].get(i) for i in range(len(d["texts"]))] for d in docs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)
    return path


ANSWERS = ("A cat.", "An astronaut.", "A cup of coffee.", "A rocket.", "A cat.", "Cells.")


def write_dialogs(path: Path, n: int, fmt: str = "dialog") -> Path:
    """``n`` one-exchange dialogues about skimage photos in this project's dialogue JSONL (``dialog``) or LLaVA's
    JSON (``llava``, images in ``path.parent / "images"``). Photo k's answer is ``ANSWERS[k % 6]``."""
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        k = i % len(_PHOTOS)
        if fmt == "llava":
            (path.parent / "images").mkdir(exist_ok=True)
            (path.parent / "images" / f"{i}.jpg").write_bytes(photo_bytes(k))
            recs.append({"id": f"d{i}", "image": f"{i}.jpg", "conversations": [
                {"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": ANSWERS[k]}]})
        else:
            recs.append({"id": f"d{i}", "turns": [
                {"role": "user", "content": [{"image_base64": base64.b64encode(photo_bytes(k)).decode()},
                                             {"text": "What is this?"}]},
                {"role": "assistant", "content": [{"text": ANSWERS[k]}]}]})
    if fmt == "llava":
        path.write_text(json.dumps(recs))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path
