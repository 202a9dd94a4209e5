"""The documents of a run's final units, as the writers take them: unit by unit, in unit order, with the
keys the pipeline kept in ``general_metadata`` for its own use (page opt-out signals) removed.

Shared by the end of a run (:mod:`pipeline.finish`) and the writers' tasks (:mod:`pipeline.writers.parallel`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from obelics import storage
from obelics.document import DOCUMENT_SCHEMA

PRIVATE_GM_KEYS = ("http_headers", "optout_meta")


def _clean_general_metadata(table: pa.Table) -> pa.Table:
    values = []
    for s in table["general_metadata"].to_pylist():
        gm = json.loads(s) if s else {}
        if isinstance(gm, dict):
            for k in PRIVATE_GM_KEYS:
                gm.pop(k, None)
        values.append(json.dumps(gm, ensure_ascii=False))
    idx = table.schema.get_field_index("general_metadata")
    return table.set_column(idx, "general_metadata", pa.array(values, pa.string()))


def _unit_paths(work: str | Path, stage: str | None, units: list[str]) -> list[str]:
    if stage is None:
        return []
    paths = (storage.join(work, stage, f"{u}.parquet") for u in units)
    return [p for p in paths if storage.exists(p)]


def count_documents(work: str | Path, stage: str | None, units: list[str]) -> int:
    """The number of final documents (the units' Parquet footers only)."""
    n = 0
    for path in _unit_paths(work, stage, units):
        f = storage.parquet_file(path)
        try:
            n += f.metadata.num_rows
        finally:
            f.close()
    return n


def unit_tables(work: str | Path, stage: str | None, units: list[str]) -> Iterator[pa.Table]:
    """Every unit's final documents, one unit at a time, in unit order (private metadata removed)."""
    for path in _unit_paths(work, stage, units):
        table = storage.read_parquet(path).select(DOCUMENT_SCHEMA.names).cast(DOCUMENT_SCHEMA)
        yield _clean_general_metadata(table)


def shard_tables(tables: Iterable[pa.Table], per: int) -> Iterator[pa.Table]:
    """``tables`` (in order) regrouped into shards of ``per`` rows, the last one shorter; one empty shard
    when there are no rows. Holds at most one shard and one input table."""
    buf: list[pa.Table] = []
    n = 0
    emitted = False
    for t in tables:
        if t.num_rows == 0:
            continue
        buf.append(t)
        n += t.num_rows
        while n >= per:
            whole = pa.concat_tables(buf)
            yield whole.slice(0, per)
            emitted = True
            rest = whole.slice(per)
            buf, n = ([rest] if rest.num_rows else []), rest.num_rows
    if buf or not emitted:
        yield pa.concat_tables(buf) if buf else DOCUMENT_SCHEMA.empty_table()
