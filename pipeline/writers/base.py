"""The writer interface and the one place that chooses a run's writers.

A writer is one output format. The end of a run (:func:`write_outputs`) builds one writer per name in
the profile's ``output.formats``, calls ``open(dest, shards)`` once, ``write(part)`` once per shard of
documents (in order, each a table of document rows with ``image_bytes`` filled when a writer asked for
them), then ``close()``, which returns one stats dict per file written (``file``, ``format``, counts),
and ``abort()`` instead when anything failed. A writer writes under ``dest`` (a location string; join
with :func:`obelics.storage.join`) through :mod:`obelics.storage`, so nothing is ever half-written.

How a run calls a writer depends on its :attr:`Writer.mode` (:mod:`pipeline.writers.parallel` spreads the
output step over tasks, on Ray when the run uses Ray, in-process otherwise):

- ``"sequential"`` (the default, what the calls above describe): the driver streams every shard through
  ``open`` / ``write`` / ``close``, in order, one document after the other. A writer of your own works
  unchanged, but it costs the driver its whole time per document.
- ``"shards"``: each of the run's shards is written by :meth:`Writer.write_shard` in a task of its own, in
  any process and any order, and must give the same file(s) as ``write`` would give for that shard (its
  names from the shard's index ``k`` alone). The built-in Parquet writer and the JSON Lines example are
  such writers.
- ``"spans"``: files that span shards, their boundaries depending on every document before (the built-in
  WebDataset tars, rolling at a count or a size): the shards' tasks :meth:`Writer.measure` each document,
  the driver cuts the run into files with :meth:`Writer.planner`, and each file is written by
  :meth:`Writer.write_span` in a task of its own.

A format is a built-in name (:data:`BUILTIN`) or ``package.module:Class`` naming a :class:`Writer`
subclass of your own (see ``examples/add_output_format/``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow as pa

from obelics.config import ConfigError

if TYPE_CHECKING:
    from pipeline.writers.config import OutputConfig

BUILTIN = {
    "parquet": "pipeline.writers.parquet_hub:ParquetHubWriter",
    "webdataset": "pipeline.writers.webdataset:WebDatasetShardWriter",
}


class Writer:
    """One output format (see the module docstring for the calls a run makes)."""

    format = ""  # the ``format`` of the stats this writer returns

    def __init__(self, cfg: OutputConfig):
        self.cfg = cfg

    @property
    def needs_image_bytes(self) -> bool:
        """True when the documents must carry ``image_bytes`` (filled from the image table)."""
        return False

    def open(self, dest: str, shards: int) -> None:
        """Start writing under the run's output folder ``dest``; ``shards`` parts will follow."""
        raise NotImplementedError

    def write(self, part: pa.Table) -> None:
        """Write one shard's documents."""
        raise NotImplementedError

    def close(self) -> list[dict]:
        """Finish; returns the stats of every file written."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what is not finished (called instead of :meth:`close` on an error)."""

    #: ``"sequential"``, ``"shards"`` or ``"spans"`` (see the module docstring)
    mode = "sequential"

    def write_shard(self, dest: str, part: pa.Table, k: int, shards: int) -> list[dict]:
        """``"shards"`` writers: write the run's shard ``k`` of ``shards`` (its documents, ``image_bytes``
        filled when :attr:`needs_image_bytes`) under ``dest``, each file atomically; returns its files' stats.
        Runs in a task (any process, any order), so it may keep no state between calls."""
        raise NotImplementedError

    def measure(self, part: pa.Table, images) -> list[int]:
        """``"spans"`` writers: one size per document of a shard (``images``: the run's image table, or None),
        in a task; the driver hands them to :meth:`planner` in run order."""
        raise NotImplementedError

    def planner(self):
        """``"spans"`` writers: an object whose ``add(sizes)`` takes the next documents' sizes and returns the
        files they close, and ``finish()`` the rest; each file ``(first row, end row, total size)``."""
        raise NotImplementedError

    def location(self, dest: str, stats: dict) -> str | None:
        """Where the file of ``stats`` (one of the dicts this writer returned) is under ``dest``, or None when
        the writer does not say: a rerun of a killed output step checks that the files it skips exist."""
        return None

    def write_span(self, dest: str, part: pa.Table, index: int, size: int) -> list[dict]:
        """``"spans"`` writers: write file ``index`` holding exactly ``part``'s documents (``size``: their
        measured total, to check), atomically; returns its stats. Runs in a task."""
        raise NotImplementedError


def writer_class(name: str) -> type[Writer]:
    """The :class:`Writer` class of a format name (built-in or ``package.module:Class``)."""
    spec = BUILTIN.get(name, name)
    if ":" not in spec:
        raise ConfigError(f"output.formats: unknown format {name!r}: one of {sorted(BUILTIN)} "
                          "or package.module:Class")
    module, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"output.formats: cannot load {name!r}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Writer)):
        raise ConfigError(f"output.formats: {name!r} is not a pipeline.writers.base.Writer subclass")
    return cls


def writers_for(cfg: OutputConfig) -> list[Writer]:
    """The writers of ``output.formats``, in order: the one place a run's output formats are chosen."""
    return [writer_class(name)(cfg) for name in cfg.formats]


def write_outputs(table: pa.Table, dest: str, cfg: OutputConfig, shard_docs: int, images=None) -> list[dict]:
    """Write ``table`` (document rows, in order) in shards of ``shard_docs`` documents with every writer
    of ``cfg``; image bytes are filled from ``images`` (an :class:`~pipeline.images.table.ImageTable`)
    when a writer needs them. Returns the writers' per-file stats, writer by writer."""
    n_shards = max(1, -(-table.num_rows // shard_docs))
    parts = (table.slice(k * shard_docs, shard_docs) for k in range(n_shards))
    return write_parts(parts, n_shards, dest, cfg, images)


def write_parts(parts: Iterable[pa.Table], n_shards: int, dest: str, cfg: OutputConfig, images=None) -> list[dict]:
    """:func:`write_outputs` from the shards themselves (``n_shards`` tables of document rows, in order,
    read one at a time), every writer called in this process whatever its mode (the sequential path; a run
    spreads its writers over tasks: :mod:`pipeline.writers.parallel`)."""
    writers = writers_for(cfg)
    written = write_with(writers, parts, n_shards, dest, images)
    return [o for w in writers for o in written[id(w)]]


def write_with(writers: list[Writer], parts: Iterable[pa.Table], n_shards: int, dest: str,
               images=None) -> dict[int, list[dict]]:
    """Stream ``parts`` through ``writers`` (``open`` / ``write`` each part / ``close``; ``abort`` on an error);
    returns each writer's file stats by ``id(writer)``."""
    fill = images is not None and any(w.needs_image_bytes for w in writers)
    opened: list[Writer] = []
    try:
        for w in writers:
            w.open(dest, n_shards)
            opened.append(w)
        written = 0
        for part in parts:
            if fill:
                from pipeline.images.merge import fill_image_bytes

                part = fill_image_bytes(part, images)
            for w in writers:
                w.write(part)
            written += 1
        if written != n_shards:
            raise ValueError(f"write_parts: {written} shards given, {n_shards} announced")
        outputs = {}
        while opened:
            outputs[id(opened[0])] = opened[0].close()
            opened.pop(0)
        return outputs
    finally:
        for w in opened:
            w.abort()
