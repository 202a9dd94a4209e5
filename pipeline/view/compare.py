"""One page as ``obelics-2023`` and ``default`` extract it, from the WARC record the run read.

The document's WARC pointer (``warc_filename``, offset, length) names the record; its bytes are read from
the run's input with that name (one ranged read: local, object store or Common Crawl) and both profiles'
extraction runs on them on demand, through the same reader the pipeline uses.
"""

from __future__ import annotations

import os
import tempfile

from obelics import storage
from obelics.warc import read_record_at, warc_filename_of

PROFILES = ("obelics-2023", "default")


def input_for(out: str, warc_filename: str) -> str:
    """The run input (``run.json``) whose recorded ``warc_filename`` is ``warc_filename``."""
    plan = storage.read_json(storage.join(out, "run.json")) if storage.exists(storage.join(out, "run.json")) else {}
    for source in plan.get("inputs", []):
        if warc_filename_of(source) == warc_filename:
            return source
    raise ValueError(f"{warc_filename} is not an input of this run")


def extract_both(out: str, warc: dict) -> dict:
    """``{profile: document}`` for the record at ``warc`` (``warc_filename``, ``warc_record_offset``,
    ``warc_record_length``), each document as :func:`pipeline.view.runfolder.document` renders it."""
    from obelics.document import documents_to_table
    from obelics.extract import iter_extracted
    from pipeline.view.runfolder import document

    if not warc.get("warc_filename") or warc.get("warc_record_length") is None:
        raise ValueError("this document has no WARC pointer")
    source = input_for(out, warc["warc_filename"])
    data = read_record_at(source, int(warc["warc_record_offset"]), int(warc["warc_record_length"]))
    suffix = ".warc.gz" if data[:2] == b"\x1f\x8b" else ".warc"
    # the pipeline's reader takes a WARC file: the one record is written to a temporary one
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="obelics-view-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        result = {}
        for profile in PROFILES:
            docs = [doc for _record, doc in iter_extracted(path, profile)]
            if not docs:
                result[profile] = None
                continue
            shown = document(-1, documents_to_table(docs[:1]).to_pylist()[0])
            shown["warc"] = {k: warc[k] for k in ("warc_filename", "warc_record_offset", "warc_record_length")}
            result[profile] = shown
        return result
    finally:
        os.unlink(path)
