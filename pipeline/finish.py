"""The end of a run: dataset shards (the writers of ``output.formats``), the funnel and the report.

Output documents are streamed unit by unit in sorted unit order into shards of ``run.output_shard_docs``
documents, so the shards are the same whatever the number of workers or interruptions, and the driver
holds one shard and one unit at a time, never the dataset: the funnel, the distributions and the flow
counts are summed shard by shard too (:class:`pipeline.report.funnel.StatsMerger`). Keys the pipeline
kept in ``general_metadata`` for its own use (page opt-out signals) are removed: the published column
holds ``url`` and the WARC pointer only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from obelics.document import DOCUMENT_SCHEMA

# the final units' documents, read unit by unit (also what the writers' tasks read), re-exported here
from pipeline.writers.units import (  # noqa: F401
    PRIVATE_GM_KEYS,
    _clean_general_metadata,
    _unit_paths,
    count_documents,
    shard_tables,
    unit_tables,
)

log = logging.getLogger("obelics.run")


def gather(work: str | Path, stage: str | None, units: list[str]) -> pa.Table:
    """Every unit's final documents in one table, in unit order (tests and small runs; a run streams)."""
    tables = list(unit_tables(work, stage, units))
    return pa.concat_tables(tables) if tables else DOCUMENT_SCHEMA.empty_table()


class RunStats:
    """The stats of a run's stages summed as they come (``read``, stage, ``metrics`` and ``flow`` entries, in
    stage then unit order, as a unit's marker holds them), one entry at a time: the run adds each stage's
    units as the stage finishes (:func:`pipeline.executor.run_unit_stage` ``on_stats``) and the finish uses
    the sums, so no marker is read again. The stage just added is also kept apart (:meth:`last_stage`),
    for the systemic-loss check."""

    def __init__(self):
        from pipeline.report.funnel import StatsMerger

        self.merger = StatsMerger()
        self.flow: list[dict] = []
        self.n_read = self.n_metrics = 0
        self._stage = StatsMerger()

    def begin_stage(self) -> None:
        """Entries added from now on belong to a new stage (:meth:`last_stage`)."""
        from pipeline.report.funnel import StatsMerger

        self._stage = StatsMerger()

    def add(self, entries: Iterable[dict]) -> None:
        from pipeline.report.funnel import merge_flow

        for s in entries:
            if "flow" in s:
                self.flow = merge_flow([*self.flow, s["flow"]])  # one entry per stage so far
            if "read" in s:
                self.merger.add({"read": s["read"]})
                self.n_read += 1
            if "stage" in s:
                self.merger.add({"stages": [s]})
                self._stage.add({"stages": [s]})
            if "metrics" in s:
                self.merger.add({"metrics": s["metrics"], "thresholds": s.get("thresholds", {})})
                self.n_metrics += 1

    def last_stage(self) -> list[dict]:
        """The stage entries added since :meth:`begin_stage`, summed by stage name."""
        return self._stage.result()["stages"]

    def result(self):
        """The :class:`~pipeline.report.funnel.StatsMerger` and the summed flow."""
        # ``shards`` counts the stats objects merged: every read, the stages as one, every metrics entry
        self.merger.shards = self.n_read + 1 + self.n_metrics
        return self.merger, self.flow


def merge_unit_stats(unit_stats: Iterable[dict]):
    """The units' and decisions' stats (``read``, stage, ``metrics`` and ``flow`` entries, in stage then unit
    order) summed one entry at a time; returns the :class:`~pipeline.report.funnel.StatsMerger` and the
    summed flow (:func:`~pipeline.report.funnel.merge_flow`)."""
    stats = RunStats()
    stats.add(unit_stats)
    return stats.result()


def write_sequentially(work: str, stage: str | None, units: list[str], out: str, ocfg, per: int,
                       image_table: str | dict | None, dists: dict) -> tuple[list[dict], Counter, int]:
    """The output step in the driver: every shard of ``per`` documents through every writer of ``ocfg`` in
    order, counted as it passes (flow counts summed, ``dists``' reservoirs fed). Returns the writers' file
    stats, the flow counts and the number of shards. What a run does when none of its writers writes shard
    by shard (:func:`pipeline.writers.parallel.write_dataset` otherwise), and the reference of its tests."""
    from pipeline.images.join import images_for
    from pipeline.report.funnel import document_distributions, flow_counts
    from pipeline.writers.base import write_parts

    n = count_documents(work, stage, units)
    n_shards = max(1, -(-n // per))
    flow: Counter = Counter()

    def counted(parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for part in parts:
            rows = part.select(["texts", "images"]).to_pylist()
            flow.update(flow_counts(rows))
            for k, values in document_distributions(rows).items():
                dists[k].extend(values)
            yield part

    images = images_for(image_table)  # the whole table: every unit passes through here
    outputs = write_parts(counted(shard_tables(unit_tables(work, stage, units), per)), n_shards, out, ocfg, images)
    if flow["document"] != n:
        raise RuntimeError(f"the units' footers count {n} documents but {flow['document']} were read")
    return outputs, flow, n_shards


def finish_run(out: Path, work: Path, last_stage: str | None, units: list[str], unit_stats: RunStats | Iterable[dict],
               profile, run_cfg, timings: list[dict], seconds: float, image_table: str | dict | None = None) -> dict:
    """Write the dataset shards and return the run's stats (the caller adds to them, writes ``report.html``
    with :func:`pipeline.report.write_run_report`, then stats.json).

    ``unit_stats``: the run's :class:`RunStats`, or the entries themselves (a generator is read once, one
    entry at a time)."""
    from pipeline.cpu import cpu_summary
    from pipeline.report.funnel import Reservoir
    from pipeline.writers.base import writers_for
    from pipeline.writers.config import OutputConfig
    from pipeline.writers.parallel import write_dataset

    ocfg = profile.section("output", OutputConfig)
    merger, unit_flow = unit_stats.result() if isinstance(unit_stats, RunStats) else merge_unit_stats(unit_stats)
    per = max(1, run_cfg.output_shard_docs)
    dists = {"images_per_document": Reservoir(), "words_per_document": Reservoir()}
    if any(w.mode != "sequential" for w in writers_for(ocfg)):  # the files written by tasks
        written = write_dataset(str(work), last_stage, units, str(out), ocfg, per, image_table,
                                bool(getattr(run_cfg, "use_ray", False)), dists)
        outputs, flow, n_shards = written.outputs, written.flow, written.shards
    else:  # only writers of one's own that write shard after shard: every document through the driver
        outputs, flow, n_shards = write_sequentially(str(work), last_stage, units, str(out), ocfg, per,
                                                     image_table, dists)
    merged = merger.result()
    merged["distributions"] = {k: r.values for k, r in dists.items()}
    merged["outputs"] = outputs
    merged["flow"] = unit_flow
    merged["summary"] = {"profile": profile.name, "units": len(units), "documents": flow["document"],
                         "images": flow["image"], "words": flow["word"], "parquet_shards": n_shards if "parquet" in ocfg.formats else 0,
                         "seconds": round(seconds, 2)}
    merged["timings"] = timings
    merged["cpu"] = cpu_summary(timings, (merged.get("read") or {}).get("html_records"))  # pipeline.cpu
    log.info("wrote %d documents, %d images in %d shard(s)", flow["document"], flow["image"], n_shards)
    return merged
