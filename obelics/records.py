"""The contract between WARC reading and HTML extraction: one HTML response record."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class HtmlRecord:
    """One HTML ``response`` record of a WARC file, before extraction.

    ``payload`` is the HTTP body (de-chunked and content-decoded). ``charset`` is the charset the
    reader chose (HTTP ``Content-Type`` header, then ``WARC-Identified-Content-Charset``, then
    ``<meta charset>``, then detection); ``http_charset`` and ``identified_charset`` keep the raw
    signals so that a profile can apply another rule (``obelics-2023`` uses the WARC header, then
    bs4's detector). ``http_headers`` are lower-cased names (opt-out reads ``x-robots-tag``,
    ``tdm-reservation``).
    """

    url: str
    payload: bytes
    charset: str
    warc_filename: str
    warc_record_offset: int
    warc_record_length: int
    capture_date: str | None = None
    http_charset: str | None = None
    identified_charset: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None

    @property
    def html(self) -> str:
        """The payload decoded with :attr:`charset` (undecodable bytes replaced)."""
        try:
            return self.payload.decode(self.charset, errors="replace")
        except LookupError:
            return self.payload.decode("utf-8", errors="replace")

    @property
    def general_metadata(self) -> dict:
        return {
            "url": self.url,
            "warc_filename": self.warc_filename,
            "warc_record_offset": self.warc_record_offset,
            "warc_record_length": self.warc_record_length,
        }


@dataclass
class ReadStats:
    """Counters of a read: records seen, HTML records yielded, and skips by reason."""

    records: int = 0
    html_records: int = 0
    bytes_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    retries: int = 0  # http(s) reads retried (resumed with a Range request)
    recovered: Counter = field(default_factory=Counter)  # not skips: truncated records kept, resync bytes

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def merge(self, other: ReadStats) -> ReadStats:
        self.records += other.records
        self.html_records += other.html_records
        self.bytes_read += other.bytes_read
        self.skipped.update(other.skipped)
        self.retries += other.retries
        self.recovered.update(other.recovered)
        return self

    def as_dict(self) -> dict:
        return {"records": self.records, "html_records": self.html_records, "bytes_read": self.bytes_read,
                "skipped": dict(sorted(self.skipped.items())), "retries": self.retries,
                "recovered": dict(sorted(self.recovered.items()))}


@dataclass
class ImageRecord:
    """One image ``response`` record of a WARC file: the offline image source of the sample.

    ``payload`` is the HTTP body as served (original bytes, not re-encoded).
    """

    url: str
    payload: bytes
    content_type: str | None
    http_status: int
    http_headers: dict[str, str] = field(default_factory=dict)
    warc_filename: str = ""
    warc_record_offset: int = 0
    warc_record_length: int = 0
    capture_date: str | None = None
