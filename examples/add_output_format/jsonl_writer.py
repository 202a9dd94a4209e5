"""An output format of your own: JSON Lines, one document per line, one file per shard of the run.

``OUT/jsonl/train-00000.jsonl`` (+ ``train-00000.stats.json``), each line
``{"texts": [...], "images": [...], "metadata": [...], "general_metadata": {...}}`` (the Hub columns,
metadata decoded). Enabled by naming the class in the profile's ``output.formats`` (see ``jsonl.yaml``).
"""

from __future__ import annotations

import json

import pyarrow as pa

from obelics.storage import AtomicFile, basename, join, write_json_atomic
from pipeline.writers.base import Writer
from pipeline.writers.stats import document_counts, stats_path_for


class JsonlWriter(Writer):
    format = "jsonl"
    # Each file is named by its shard's index alone, so the run may write every shard in a task of its own
    # (``write_shard``, on Ray when the run uses Ray). A writer without ``mode`` ("sequential") gets the
    # shards one after the other in the driver through ``open`` / ``write`` / ``close``.
    mode = "shards"

    def open(self, dest: str, shards: int) -> None:
        self.dest, self.shards, self.written = dest, shards, []

    def write(self, part: pa.Table) -> None:
        self.written.extend(self.write_shard(self.dest, part, len(self.written), self.shards))

    def write_shard(self, dest: str, part: pa.Table, k: int, shards: int) -> list[dict]:
        rows = part.select(["texts", "images", "metadata", "general_metadata"]).to_pylist()
        path = join(dest, "jsonl", f"train-{k:05d}.jsonl")
        with AtomicFile(path) as f:  # appears whole under its name, or not at all
            for r in rows:
                r["metadata"], r["general_metadata"] = json.loads(r["metadata"]), json.loads(r["general_metadata"])
                f.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
            size = f.file.tell()
        stats = {"file": basename(path), "format": self.format, **document_counts(rows), "num_bytes": size}
        write_json_atomic(stats_path_for(path), stats)
        return [stats]

    def close(self) -> list[dict]:
        return self.written
