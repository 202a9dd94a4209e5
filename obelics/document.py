"""The web-document model: interleaved text and image nodes in page order.

A :class:`WebDocument` holds three aligned lists, as in the OBELICS Hub schema (docs/reference.md §2.1):
``texts[i]`` is a string at text positions and ``None`` at image positions; ``images[i]`` is the
image URL at image positions and ``None`` at text positions; ``metadata[i]`` is ``None`` for text
and a dict for images (``src``, ``alt_text``, ``rendered_width``, ...). ``general_metadata`` is the
page's dict (``url``, ``warc_filename``, ``warc_record_offset``, ``warc_record_length``).

Rows (``to_row``) carry the four published columns — ``metadata`` and ``general_metadata`` as JSON
strings — plus typed fields later stages use (``doc_id``, ``url``, ``domain``, WARC pointer,
``capture_date``, ``language``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

EOD_TOKEN = "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED"

# The OBELICS Hub features (docs/reference.md §2.3), in the card's order.
HUB_SCHEMA = pa.schema(
    [
        ("images", pa.list_(pa.string())),
        ("metadata", pa.string()),
        ("general_metadata", pa.string()),
        ("texts", pa.list_(pa.string())),
    ]
)

# Internal rows: the Hub columns plus the typed fields later stages need.
DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("url", pa.string()),
        ("domain", pa.string()),
        ("warc_filename", pa.string()),
        ("warc_record_offset", pa.int64()),
        ("warc_record_length", pa.int64()),
        ("capture_date", pa.string()),
        ("images", pa.list_(pa.string())),
        ("metadata", pa.string()),
        ("general_metadata", pa.string()),
        ("texts", pa.list_(pa.string())),
    ]
)


def make_doc_id(url: str | None, warc_filename: str | None = None, warc_record_offset: int | None = None,
                content: bytes | None = None) -> str:
    """A stable id: the same page from the same WARC record always gets the same id."""
    h = hashlib.sha1()
    h.update((url or "").encode("utf-8", "surrogatepass"))
    h.update(b"\0")
    h.update((warc_filename or "").encode("utf-8", "surrogatepass"))
    h.update(b"\0")
    h.update(str(warc_record_offset if warc_record_offset is not None else "").encode())
    if content is not None and warc_filename is None:
        h.update(b"\0")
        h.update(hashlib.sha1(content).digest())
    return h.hexdigest()[:20]


def domain_of(url: str | None) -> str:
    """The netloc of ``url`` as the original build used it (``www.x.com`` and ``x.com`` differ)."""
    if not url:
        return ""
    try:
        return urlsplit(url).netloc
    except ValueError:
        return ""


@dataclass
class WebDocument:
    """One page as aligned text/image nodes, with its page-level metadata."""

    texts: list[str | None] = field(default_factory=list)
    images: list[str | None] = field(default_factory=list)
    metadata: list[dict[str, Any] | None] = field(default_factory=list)
    general_metadata: dict[str, Any] = field(default_factory=dict)
    doc_id: str = ""
    capture_date: str | None = None

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.images) == len(self.metadata)):
            raise ValueError(
                f"texts, images and metadata must align: {len(self.texts)}, {len(self.images)}, {len(self.metadata)}"
            )
        if not self.doc_id:
            gm = self.general_metadata
            warc_filename = gm.get("warc_filename")
            # the nodes' content enters the id only without a WARC file: not joined for a WARC record's page
            content = None if warc_filename is not None else "\n".join(
                t or i or "" for t, i in zip(self.texts, self.images)).encode()
            self.doc_id = make_doc_id(gm.get("url"), warc_filename, gm.get("warc_record_offset"), content)

    # -- convenience -------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        return self.general_metadata.get("url")

    @property
    def num_images(self) -> int:
        return sum(1 for i in self.images if i is not None)

    @property
    def num_texts(self) -> int:
        return sum(1 for t in self.texts if t is not None)

    def nodes(self):
        """Yield ``(kind, value, meta)`` per node: ``("text", str, None)`` or ``("image", url, dict)``."""
        for t, i, m in zip(self.texts, self.images, self.metadata):
            if i is not None:
                yield "image", i, m
            else:
                yield "text", t, None

    def check(self) -> None:
        """Raise ``ValueError`` unless exactly one of text/image is set at each position."""
        for k, (t, i, m) in enumerate(zip(self.texts, self.images, self.metadata)):
            if (t is None) == (i is None):
                raise ValueError(f"node {k}: exactly one of text and image must be set")
            if (m is None) != (i is None):
                raise ValueError(f"node {k}: metadata must be set iff the node is an image")

    # -- rows --------------------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        """The document as a row of :data:`DOCUMENT_SCHEMA` (JSON strings for the metadata columns)."""
        gm = self.general_metadata
        return {
            "doc_id": self.doc_id,
            "url": gm.get("url"),
            "domain": domain_of(gm.get("url")),
            "warc_filename": gm.get("warc_filename"),
            "warc_record_offset": gm.get("warc_record_offset"),
            "warc_record_length": gm.get("warc_record_length"),
            "capture_date": self.capture_date,
            "images": list(self.images),
            "metadata": json.dumps(self.metadata, ensure_ascii=False),
            "general_metadata": json.dumps(gm, ensure_ascii=False),
            "texts": list(self.texts),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WebDocument:
        """Inverse of :meth:`to_row`; also accepts Hub rows (the four published columns only)."""
        meta = row.get("metadata")
        gm = row.get("general_metadata")
        meta = json.loads(meta) if isinstance(meta, str) else (meta or [None] * len(row["texts"]))
        gm = json.loads(gm) if isinstance(gm, str) else (gm or {})
        if isinstance(gm, list):  # the original wrote "[]" when extraction failed
            gm = {}
        return cls(
            texts=list(row["texts"]),
            images=list(row["images"]),
            metadata=list(meta),
            general_metadata=gm,
            doc_id=row.get("doc_id") or "",
            capture_date=row.get("capture_date"),
        )


def documents_to_table(docs, schema: pa.Schema = DOCUMENT_SCHEMA) -> pa.Table:
    """Rows of ``docs`` as an Arrow table with ``schema``."""
    rows = [d.to_row() for d in docs]
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def table_to_documents(table: pa.Table):
    """Yield :class:`WebDocument` from an Arrow table with at least the Hub columns."""
    for row in table.to_pylist():
        yield WebDocument.from_row(row)
