"""The original code's outputs on the shared pages (``../shared/data/reference``), for comparisons.

Each page is read the way the reference was made (its README): an HTML file is one record with no
``WARC-Identified-Content-Charset`` (so bs4 detects the charset); a WARC record is the first
``response`` record of the exact byte range ``offset .. offset + record_length``. Page URL: the
``url`` field of the reference rows, never the manifest's.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ReferencePage:
    key: str  # "html:<file>" or "warc:<file>@<offset>"
    url: str
    payload: bytes
    identified_charset: str | None
    general_metadata: dict
    expected: dict  # the reference row

    @property
    def expected_texts(self) -> list:
        return list(self.expected["texts"])

    @property
    def expected_images(self) -> list:
        """The reference ``images`` with ``""`` at text positions turned into None."""
        return [i if i else None for i in self.expected["images"]]


def _first_response(data: bytes) -> tuple[bytes, str | None]:
    from warcio.archiveiterator import ArchiveIterator

    for rec in ArchiveIterator(io.BytesIO(data)):
        if rec.rec_type == "response":
            return rec.content_stream().read(), rec.rec_headers.get_header("WARC-Identified-Content-Charset")
    return b"", None


def iter_reference_pages(shared: Path, which: str = "both", direct: bool = False) -> Iterator[ReferencePage]:
    """Yield the shared pages with their expected output. ``which``: ``html``, ``warc`` or ``both``;
    ``direct`` picks the ``*_direct.jsonl`` outputs (no bs4 round trip)."""
    shared = Path(shared)
    ref = shared / "data" / "reference"
    suffix = "_direct" if direct else ""
    if which in ("html", "both"):
        with open(ref / f"shared_html{suffix}.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                payload = (shared / "data" / "html" / row["file"]).read_bytes()
                yield ReferencePage(f"html:{row['file']}", row["url"], payload, None, {}, row)
    if which in ("warc", "both"):
        with open(ref / f"shared_warc{suffix}.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                with open(shared / "data" / "warc" / row["warc"], "rb") as w:
                    w.seek(row["offset"])
                    data = w.read(row["record_length"])
                payload, charset = _first_response(data)
                gm = {"url": row["url"], "warc_filename": row["warc"], "warc_record_offset": row["offset"],
                      "warc_record_length": row["record_length"]}
                yield ReferencePage(f"warc:{row['warc']}@{row['offset']}", row["url"], payload, charset, gm, row)


def first_difference(got: list, expected: list) -> str:
    """A short description of where two node lists first differ."""
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return f"node {i}: got {a!r:.300} expected {b!r:.300}"
    if len(got) != len(expected):
        return f"lengths differ: got {len(got)} nodes, expected {len(expected)}"
    return "equal"
