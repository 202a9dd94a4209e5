"""Merge the image table back into documents (docs/reference.md §4.4, without the original's URL bans).

Each image node is looked up by its URL (``images[i]``). A downloaded image keeps its node and its
metadata gains ``original_width``, ``original_height``, ``format`` and ``sha256``; the bytes and the
recorded response headers travel beside the document in two aligned columns, ``image_bytes``
(list<binary>) and ``image_headers`` (list<string>, JSON), null at text positions, for the image,
NSFW and opt-out filters the composer runs next, and for the writers. An image that failed is removed
with its node and counted under its reason (``http_404``, ``timeout``, ``optout:x-robots-tag``,
``truncated``, ``not_downloaded`` when the table has no row for it, ...). Documents are never dropped
here: the document-level image-count rules belong to the filters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa

from filters.base import FilterStats
from obelics.document import DOCUMENT_SCHEMA
from pipeline.images.table import ImageRows

STAGE = "images.merge"
IMAGE_COLUMNS = [("image_bytes", pa.list_(pa.binary())), ("image_headers", pa.list_(pa.string()))]


def merged_schema(base: pa.Schema = DOCUMENT_SCHEMA) -> pa.Schema:
    """``base`` plus the aligned ``image_bytes`` and ``image_headers`` columns."""
    schema = base
    for name, typ in IMAGE_COLUMNS:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
        schema = schema.append(pa.field(name, typ))
    return schema


MERGED_SCHEMA = merged_schema()


def merge_row(row: dict, lookup: Mapping[str, dict], stats: FilterStats | None = None) -> dict:
    """One document row (``DOCUMENT_SCHEMA``) with its images merged; failed image nodes removed."""
    meta = row.get("metadata")
    meta = json.loads(meta) if isinstance(meta, str) else list(meta or [None] * len(row["texts"]))
    texts, images, metas, blobs, headers = [], [], [], [], []
    if stats is not None:
        stats.seen("document")
    for text, url, m in zip(row["texts"], row["images"], meta):
        if url is None:
            texts.append(text)
            images.append(None)
            metas.append(None)
            blobs.append(None)
            headers.append(None)
            continue
        if stats is not None:
            stats.seen("image")
        hit = lookup.get(url)
        reason = "not_downloaded" if hit is None else (None if hit["status"] == "success" else hit["reason"])
        if reason is not None:
            if stats is not None:
                stats.drop("image", reason or "unknown")
            continue
        m = dict(m or {})
        m.update(original_width=hit["width"], original_height=hit["height"], format=hit["format"],
                 sha256=hit["sha256"])
        texts.append(None)
        images.append(url)
        metas.append(m)
        blobs.append(hit.get("bytes"))
        headers.append(hit.get("headers"))
        if stats is not None:
            stats.kept("image")
    if stats is not None:
        stats.kept("document")
    out = dict(row)
    out.update(texts=texts, images=images, metadata=json.dumps(metas, ensure_ascii=False),
               image_bytes=blobs, image_headers=headers)
    return out


def merge_table(table: pa.Table, images: ImageRows | Mapping[str, dict], stats: FilterStats | None = None,
                with_bytes: bool = True) -> pa.Table:
    """Merge a batch of document rows; extra input columns pass through unchanged.

    ``images`` is an :class:`ImageTable` or a unit's joined rows (:class:`pipeline.images.join.UnitImages`),
    looked up once for the batch's URLs, or a ready mapping ``url -> row``. ``with_bytes=False`` leaves ``image_bytes`` null (sizes and hashes only).
    """
    if isinstance(images, ImageRows):
        urls = {u for lst in table.column("images").to_pylist() for u in lst or () if u}
        images = images.lookup(urls, with_bytes=with_bytes)
    schema = merged_schema(table.schema)
    rows = [merge_row(r, images, stats) for r in table.to_pylist()]
    if not with_bytes:
        for r in rows:
            r["image_bytes"] = [None] * len(r["texts"])
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def strip_image_columns(table: pa.Table) -> pa.Table:
    """The table without ``image_bytes`` / ``image_headers`` (back to the document schema)."""
    return table.drop_columns([n for n, _ in IMAGE_COLUMNS if n in table.column_names])


def fill_image_bytes(table: pa.Table, images: ImageRows) -> pa.Table:
    """Fill ``image_bytes`` from the image table for image nodes that have none (by URL, sha256-checked).

    Lets the stages between the merge and the writers carry documents without their bytes
    (``merge_table(..., with_bytes=False)``); the writers get them back here.
    """
    rows = table.to_pylist()
    fill_rows(rows, images)
    schema = merged_schema(table.schema)
    for r in rows:
        r.setdefault("image_headers", [None] * len(r["images"]))
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def fill_rows(rows: list[dict], images: ImageRows) -> None:
    """:func:`fill_image_bytes` on document rows in place (``image_bytes`` set on each): a writer that takes
    rows gets them without a table built and turned back into rows."""
    need = {u for r in rows for u, b in zip(r["images"], r.get("image_bytes") or [None] * len(r["images"]))
            if u is not None and b is None}
    hits = images.lookup(need, with_bytes=True) if need else {}
    for r in rows:
        meta = r.get("metadata")
        meta = json.loads(meta) if isinstance(meta, str) else (meta or [None] * len(r["texts"]))
        blobs = list(r.get("image_bytes") or [None] * len(r["images"]))
        for pos, url in enumerate(r["images"]):
            if url is None or blobs[pos] is not None:
                continue
            hit = hits.get(url)
            if hit and hit["status"] == "success" and hit["sha256"] == (meta[pos] or {}).get("sha256"):
                blobs[pos] = hit["bytes"]
        r["image_bytes"] = blobs
