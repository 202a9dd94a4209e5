"""What the viewer reads from a run folder, always in bounded pieces.

Documents come from the run's published Parquet shards (``parquet/``) once they exist, else (a run in
progress) from the furthest unit stage in ``work/`` that has written units. Every read is one Parquet row
group at most (``pq.ParquetFile.read_row_group``, footers cached), so paging, search and random samples
over millions of documents keep memory flat: nothing ever loads a whole shard. Search scans row groups
from a cursor and stops after ``max_scan`` rows, returning where to go on.

Images come from the run's image table (``work/NN-image_table``) by URL, else from its WebDataset shards
(:func:`webdataset_images`); the viewer never fetches anything from the web. Paths go through
:mod:`obelics.storage`, so ``OUT`` may be a local folder or an ``s3://`` prefix.
"""

from __future__ import annotations

import json
import random
import re
import tarfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from obelics import storage

SUMMARY_COLUMNS = ["texts", "images", "general_metadata"]
DOCUMENT_COLUMNS = ["texts", "images", "metadata", "general_metadata"]
_STAGE_DIR = re.compile(r"^(\d+)-(.+)$")


@dataclass(frozen=True)
class DocFile:
    """One Parquet file of documents: its path, its rows, and the first row of each row group."""

    path: str
    rows: int
    group_starts: tuple[int, ...]  # row of each row group's start, plus the total at the end


def _footer(path: str) -> DocFile:
    md = storage.parquet_file(path).metadata
    starts = [0]
    for i in range(md.num_row_groups):
        starts.append(starts[-1] + md.row_group(i).num_rows)
    return DocFile(path, md.num_rows, tuple(starts))


def _parquet_files(folder: str, units_only: bool = False) -> list[str]:
    """Complete Parquet files of ``folder`` (temporary siblings of atomic writes left out), sorted;
    ``units_only``: in a work stage folder, the units' documents only (``<unit>.parquet`` whose marker
    ``<unit>.stats.json`` exists; side files such as ``<unit>.image_records.parquet`` left out)."""
    if not storage.isdir(folder):
        return []
    names = sorted(storage.listdir(folder))
    markers = {n[: -len(".stats.json")] for n in names if n.endswith(".stats.json")}
    return [storage.join(folder, n) for n in names
            if n.endswith(".parquet") and not n.startswith(".") and ".tmp" not in n
            and (not units_only or n[: -len(".parquet")] in markers)]


def unit_stage_dirs(out: str) -> list[str]:
    """The unit stage folders of ``out/work`` (those holding ``<unit>.parquet``), in stage order."""
    work = storage.join(out, "work")
    if not storage.isdir(work):
        return []
    names = sorted((n for n in storage.listdir(work) if _STAGE_DIR.match(n)), key=lambda n: int(n.split("-")[0]))
    return [n for n in names if any(f.endswith(".stats.json") for f in storage.listdir(storage.join(work, n)))]


def _gm(value) -> dict:
    if isinstance(value, dict):
        return value
    try:
        gm = json.loads(value) if value else {}
    except ValueError:
        return {}
    return gm if isinstance(gm, dict) else {}


def domain_of(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return ""


def words_of(texts) -> int:
    return sum(len(t.split()) for t in texts or () if t)


def summary(index: int, row: dict) -> dict:
    """What a list shows of one document row."""
    gm = _gm(row.get("general_metadata"))
    texts = row.get("texts") or []
    first = next((t for t in texts if t), "")
    url = gm.get("url") or row.get("url")
    return {"index": index, "url": url, "domain": domain_of(url), "words": words_of(texts),
            "images": sum(1 for i in row.get("images") or () if i), "snippet": first[:200]}


def document(index: int, row: dict) -> dict:
    """One document row as the page renders it: its nodes in order (text or image with its metadata)."""
    gm = _gm(row.get("general_metadata"))
    meta = row.get("metadata")
    meta = json.loads(meta) if isinstance(meta, str) and meta else (meta or [])
    nodes = []
    for k, (text, image) in enumerate(zip(row.get("texts") or [], row.get("images") or [])):
        m = meta[k] if k < len(meta) else None
        if image is not None:
            nodes.append({"type": "image", "url": image, "meta": m or {}})
        elif text is not None:
            nodes.append({"type": "text", "text": text})
    url = gm.get("url") or row.get("url")
    return {"index": index, "url": url, "domain": domain_of(url), "doc_id": row.get("doc_id"),
            "warc": {k: gm.get(k) for k in ("warc_filename", "warc_record_offset", "warc_record_length")},
            "words": words_of(row.get("texts")), "images": sum(1 for n in nodes if n["type"] == "image"),
            "nodes": nodes, "general_metadata": gm}


class RunFolder:
    """A run folder as the viewer reads it (see the module docstring). Thread-safe."""

    def __init__(self, out: str, cache_files: int = 16):
        self.out = str(out)
        self._lock = threading.Lock()
        self._footers: OrderedDict[tuple[str, int], DocFile] = OrderedDict()
        self._cache_files = cache_files
        self._images = None  # (image table folder, ImageTable)
        self._wds_index: dict[str, tuple[str, str]] | None = None

    # -- where the documents are ---------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return storage.exists(storage.join(self.out, "stats.json"))

    def source(self) -> tuple[str, list[str]]:
        """(label, Parquet files) of the documents shown: the published shards, else the furthest stage."""
        published = _parquet_files(storage.join(self.out, "parquet"))
        if published and self.finished:
            return "parquet", published
        for name in reversed(unit_stage_dirs(self.out)):
            files = _parquet_files(storage.join(self.out, "work", name), units_only=True)
            if files:
                return f"work/{name}", files
        return "none", published

    def files(self) -> list[DocFile]:
        out = []
        for path in self.source()[1]:
            key = (path, storage.size(path))
            with self._lock:
                f = self._footers.get(key)
            if f is None:
                f = _footer(path)
                with self._lock:
                    self._footers[key] = f
                    while len(self._footers) > max(self._cache_files, 1024):
                        self._footers.popitem(last=False)
            out.append(f)
        return out

    def count(self) -> int:
        return sum(f.rows for f in self.files())

    # -- bounded reads ---------------------------------------------------------------------------------
    def _locate(self, files: list[DocFile], index: int) -> tuple[DocFile, int, int]:
        """(file, row group, row inside it) of global row ``index``."""
        base = 0
        for f in files:
            if index < base + f.rows:
                row = index - base
                for g in range(len(f.group_starts) - 1):
                    if row < f.group_starts[g + 1]:
                        return f, g, row - f.group_starts[g]
            base += f.rows
        raise IndexError(f"document {index} out of range (the run has {base})")

    @staticmethod
    def _group(f: DocFile, g: int, columns: list[str]) -> pa.Table:
        pf = storage.parquet_file(f.path)
        names = set(pf.schema_arrow.names)
        return pf.read_row_group(g, columns=[c for c in columns if c in names])

    def rows(self, start: int, n: int, columns: list[str] = SUMMARY_COLUMNS) -> list[tuple[int, dict]]:
        """Rows ``[start, start + n)`` (fewer at the end), each read from its row group only."""
        files = self.files()
        total = sum(f.rows for f in files)
        out: list[tuple[int, dict]] = []
        i = max(0, start)
        while i < min(total, start + n):
            f, g, r = self._locate(files, i)
            table = self._group(f, g, columns)
            take = min(table.num_rows - r, start + n - i)
            for k, row in enumerate(table.slice(r, take).to_pylist()):
                out.append((i + k, row))
            i += take
        return out

    def page(self, start: int, n: int) -> dict:
        rows = self.rows(start, n)
        return {"start": start, "total": self.count(), "documents": [summary(i, r) for i, r in rows]}

    def document(self, index: int) -> dict:
        rows = self.rows(index, 1, DOCUMENT_COLUMNS + ["doc_id", "url"])
        if not rows:
            raise IndexError(f"document {index} out of range")
        return document(*rows[0])

    def random_index(self, seed: int | None = None) -> int:
        total = self.count()
        if not total:
            raise IndexError("the run has no documents yet")
        return random.Random(seed).randrange(total)

    def search(self, query: str, field: str = "text", start: int = 0, limit: int = 20,
               max_scan: int = 20000) -> dict:
        """Documents from row ``start`` on whose ``field`` (text, url or domain) contains ``query`` (any
        case): at most ``limit`` of them, scanning at most ``max_scan`` rows (one row group at a time);
        ``next`` is the row to continue from (None at the end)."""
        if field not in ("text", "url", "domain"):
            raise ValueError(f"search field must be text, url or domain, not {field!r}")
        q = query.lower()
        files = self.files()
        total = sum(f.rows for f in files)
        hits: list[dict] = []
        i, scanned = max(0, start), 0
        while i < total and len(hits) < limit and scanned < max_scan:
            f, g, r = self._locate(files, i)
            table = self._group(f, g, SUMMARY_COLUMNS).slice(r)
            for k in self._matches(table, field, q):
                if len(hits) < limit:
                    hits.append(summary(i + k, table.slice(k, 1).to_pylist()[0]))
                else:
                    table = table.slice(0, k)  # continue from this match next time
                    break
            i += table.num_rows
            scanned += table.num_rows
        return {"query": query, "field": field, "start": start, "documents": hits,
                "next": i if i < total else None, "scanned": scanned, "total": total}

    @staticmethod
    def _matches(table: pa.Table, field: str, q: str) -> list[int]:
        """Rows of ``table`` (a row group) matching; vectorised prefilter, exact check per candidate."""
        if not table.num_rows:
            return []
        if field == "text":
            texts = table["texts"].combine_chunks()
            flat = pc.list_flatten(texts)
            hit = pc.fill_null(pc.match_substring(flat, q, ignore_case=True), False)
            parents = pc.filter(pc.list_parent_indices(texts), hit)
            return sorted(set(parents.to_pylist()))
        gm = table["general_metadata"]
        cand = pc.fill_null(pc.match_substring(gm, q, ignore_case=True), False)
        out = []
        for k in pc.indices_nonzero(cand).to_pylist():
            url = _gm(gm[k].as_py()).get("url") or ""
            if (q in url.lower()) if field == "url" else (q in domain_of(url)):
                out.append(k)
        return out

    # -- funnel ------------------------------------------------------------------------------------------
    def funnel(self) -> dict:
        """``stats.json`` of a finished run; for one in progress, the merged stats of the units done so far."""
        path = storage.join(self.out, "stats.json")
        if storage.exists(path):
            stats = storage.read_json(path)
            stats["finished"] = True
            return stats
        from pipeline.executor import collect_unit_stats
        from pipeline.report.funnel import merge_stats

        run = self.run_plan()
        from pipeline.sources import input_name

        units = [input_name(i) for i in run.get("inputs", [])]
        work = storage.join(self.out, "work")
        dirs = [d for d in storage.listdir(work) if _STAGE_DIR.match(d)] if storage.isdir(work) else []
        dirs = sorted(dirs, key=lambda n: int(n.split("-")[0]))  # (stage folders only: not WORK/.output)
        unit_stats = list(collect_unit_stats(work, dirs, units))  # a generator: read twice below
        read = [s["read"] for s in unit_stats if "read" in s]
        merged = merge_stats([{"read": r} for r in read] + [{"stages": [s for s in unit_stats if "stage" in s]}])
        merged["finished"] = False
        return merged

    def run_plan(self) -> dict:
        path = storage.join(self.out, "run.json")
        return storage.read_json(path) if storage.exists(path) else {}

    # -- images ------------------------------------------------------------------------------------------
    def image_table_dir(self) -> str | None:
        work = storage.join(self.out, "work")
        if not storage.isdir(work):
            return None
        for name in storage.listdir(work):
            m = _STAGE_DIR.match(name)
            marker = storage.join(work, name, "decision.json")
            if m and m.group(2) == "image_table" and storage.exists(marker):
                here = storage.join(work, name, "table")  # where the run put it, also after the folder moved
                return here if storage.isdir(here) else (storage.read_json(marker).get("decision") or {}).get("table_dir")
        return None

    def image(self, url: str) -> tuple[bytes, str | None] | None:
        """(bytes, format) of the image at ``url`` from the run's image table or WebDataset shards, or None."""
        folder = self.image_table_dir()
        if folder:
            from pipeline.images.table import ImageTable

            with self._lock:
                if self._images is None or self._images[0] != folder:
                    self._images = (folder, ImageTable(folder))
                table = self._images[1]
            row = table.lookup([url], with_bytes=True).get(url)
            if row and row.get("status") == "success" and row.get("bytes"):
                return row["bytes"], row.get("format")
        return self._webdataset_image(url)

    def image_info(self, url: str) -> dict | None:
        """The image table's row for ``url`` without its bytes (status, size, format, reason)."""
        folder = self.image_table_dir()
        if not folder:
            return None
        from pipeline.images.table import ImageTable

        return ImageTable(folder).lookup([url], with_bytes=False).get(url)

    def _webdataset_image(self, url: str) -> tuple[bytes, str | None] | None:
        if not self._wds_index:  # built once the shards exist (a run in progress writes them last)
            self._wds_index = webdataset_images(storage.join(self.out, "webdataset"))
        where = self._wds_index.get(url)
        return webdataset_image(*where) if where else None


# The two sample layouts of pipeline/writers/webdataset.py: one msgpack list of image bytes aligned with the
# nodes (``{key}.images.mp``), or, in shards written before it, one member per image (``{key}.img0003.jpg``).
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "avif")


def webdataset_images(folder: str) -> dict[str, tuple[str, str, int, str | None]]:
    """``{image URL: (shard, member, node position, format)}`` of the WebDataset shards in ``folder``, from
    the tar headers and the samples' ``json`` members only (image bytes are skipped, not read into memory)."""
    index: dict[str, tuple[str, str, int, str | None]] = {}
    if not storage.isdir(folder):
        return index
    for name in sorted(storage.listdir(folder)):
        if not name.endswith(".tar"):
            continue
        shard = storage.join(folder, name)
        samples: dict[str, dict] = {}
        with storage.open_input(shard) as fh, tarfile.open(fileobj=fh, mode="r|") as tf:
            for m in tf:
                key, _, rest = m.name.partition(".")
                s = samples.setdefault(key, {"json": None, "members": []})
                if rest == "json":
                    s["json"] = json.loads(tf.extractfile(m).read())
                elif rest == "images.mp" or rest.rsplit(".", 1)[-1].lower() in IMAGE_EXTS:
                    s["members"].append((rest, m.name))
        for s in samples.values():
            doc = s["json"] or {}
            urls = doc.get("images") or []
            meta = doc.get("metadata")
            meta = json.loads(meta) if isinstance(meta, str) else (meta or [])
            for rest, member in s["members"]:
                if rest == "images.mp":
                    places = [k for k, u in enumerate(urls) if u]
                else:
                    digits = re.search(r"(\d+)", rest)
                    places = [int(digits.group(1))] if digits else []
                for pos in places:
                    if pos < len(urls) and urls[pos]:
                        fmt = (meta[pos] or {}).get("format") if pos < len(meta) and isinstance(meta[pos], dict) else None
                        index.setdefault(urls[pos], (shard, member, pos, fmt or rest.rsplit(".", 1)[-1]))
    return index


def webdataset_image(shard: str, member: str, pos: int, fmt: str | None) -> tuple[bytes, str | None] | None:
    """The bytes of the image at node ``pos`` in ``member`` of ``shard`` (see :func:`webdataset_images`)."""
    with storage.open_input(shard) as fh, tarfile.open(fileobj=fh, mode="r|") as tf:
        for m in tf:
            if m.name != member:
                continue
            data = tf.extractfile(m).read()
            if not member.endswith(".images.mp"):
                return data, fmt
            import msgpack

            blobs = msgpack.unpackb(data, raw=False)
            return (blobs[pos], fmt) if pos < len(blobs) and blobs[pos] else None
    return None
