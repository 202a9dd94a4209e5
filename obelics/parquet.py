"""Atomic Parquet writing, through :class:`obelics.storage.AtomicFile` (temporary name, then rename)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from obelics.document import DOCUMENT_SCHEMA, WebDocument, documents_to_table
from obelics.storage import AtomicFile, atomic_writer


class ParquetDocumentWriter:
    """Stream documents into one Parquet file; nothing is visible under ``path`` until ``close``.

    Used as a context manager: on an exception the temporary file is removed and ``path`` is left
    untouched.
    """

    def __init__(self, path: str | Path, schema: pa.Schema = DOCUMENT_SCHEMA, batch_size: int = 256,
                 compression: str = "zstd"):
        self.path = path  # a local path or an object-store URI (obelics.storage; Path would break a URI)
        self.schema = schema
        self.batch_size = batch_size
        self._file = AtomicFile(path)
        try:
            self._writer = pq.ParquetWriter(self._file.file, schema, compression=compression)
        except BaseException:
            self._file.abort()
            raise
        self._buffer: list[WebDocument] = []
        self.count = 0

    def write(self, doc: WebDocument) -> None:
        self._buffer.append(doc)
        if len(self._buffer) >= self.batch_size:
            self._flush()

    def write_table(self, table: pa.Table) -> None:
        """Write the rows of ``table`` (the schema's columns, cast to it) in row groups of ``batch_size``, as
        :meth:`write` does."""
        self._flush()
        self._writer.write_table(table.select(self.schema.names).cast(self.schema), row_group_size=self.batch_size)
        self.count += table.num_rows

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(documents_to_table(self._buffer, self.schema))
            self.count += len(self._buffer)
            self._buffer = []

    def close(self) -> Path:
        self._flush()
        self._writer.close()
        self._file.commit()
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.abort()

    def __enter__(self) -> ParquetDocumentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_documents(path: str | Path, docs: Iterable[WebDocument], schema: pa.Schema = DOCUMENT_SCHEMA) -> int:
    """Write ``docs`` atomically to ``path``; returns the number written."""
    with ParquetDocumentWriter(path, schema) as w:
        for d in docs:
            w.write(d)
    return w.count


def write_document_table(path: str | Path, table: pa.Table, schema: pa.Schema = DOCUMENT_SCHEMA) -> int:
    """Write a table of document rows atomically to ``path`` as :func:`write_documents` writes the same
    documents; returns the number written."""
    with ParquetDocumentWriter(path, schema) as w:
        w.write_table(table)
    return w.count


def write_table_atomic(path: str | Path, table: pa.Table, **kwargs) -> Path:
    """Write an Arrow table to ``path`` atomically (``kwargs`` go to ``pq.write_table``)."""
    with atomic_writer(path) as f:
        pq.write_table(table, f, **kwargs)
    return Path(path)


def read_documents(path: str | Path):
    """Yield :class:`WebDocument` from a Parquet file written by this toolkit or from the Hub."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=512):
        for row in batch.to_pylist():
            yield WebDocument.from_row(row)
