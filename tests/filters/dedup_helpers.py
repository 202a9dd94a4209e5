"""Building small WebDocuments for the dedup tests."""

from __future__ import annotations

from obelics.document import WebDocument


def make_doc(url: str | None, images=(), texts=("some text",), warc: str = "CC-MAIN-2023-06/a.warc.gz",
             date: str | None = None, doc_id: str = "", offset: int = 0) -> WebDocument:
    """Text nodes first, then image nodes (with ``src`` metadata)."""
    t = list(texts) + [None] * len(images)
    i = [None] * len(texts) + list(images)
    m = [None] * len(texts) + [{"src": u, "alt_text": ""} for u in images]
    gm = {"url": url, "warc_filename": warc, "warc_record_offset": offset, "warc_record_length": 10}
    return WebDocument(texts=t, images=i, metadata=m, general_metadata=gm, doc_id=doc_id, capture_date=date)
