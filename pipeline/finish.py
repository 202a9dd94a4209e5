"""The end of a run: dataset shards (the writers of ``output.formats``), the funnel and the report.

Output documents are gathered unit by unit in sorted unit order, so the shards are the same whatever
the number of workers or interruptions. Keys the pipeline kept in ``general_metadata`` for its own use
(page opt-out signals) are removed: the published column holds ``url`` and the WARC pointer only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa

from obelics import storage
from obelics.document import DOCUMENT_SCHEMA

log = logging.getLogger("obelics.run")

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


def gather(work: str | Path, stage: str | None, units: list[str]) -> pa.Table:
    """Every unit's final documents, in unit order."""
    if stage is None:
        return DOCUMENT_SCHEMA.empty_table()
    tables = []
    for u in units:
        path = storage.join(work, stage, f"{u}.parquet")
        if storage.exists(path):
            tables.append(storage.read_parquet(path).select(DOCUMENT_SCHEMA.names).cast(DOCUMENT_SCHEMA))
    return pa.concat_tables(tables) if tables else DOCUMENT_SCHEMA.empty_table()


def finish_run(out: Path, work: Path, last_stage: str | None, units: list[str], unit_stats: list[dict], profile,
               run_cfg, timings: list[dict], seconds: float, image_table_dir: str | None = None) -> dict:
    """Write the dataset shards and return the run's stats (the caller adds to them, writes ``report.html``
    with :func:`pipeline.report.write_run_report`, then stats.json)."""
    from pipeline.cpu import cpu_summary
    from pipeline.images.table import ImageTable
    from pipeline.report.funnel import document_distributions, flow_counts, merge_flow, merge_stats
    from pipeline.writers.base import write_outputs
    from pipeline.writers.config import OutputConfig

    ocfg = profile.section("output", OutputConfig)
    table = _clean_general_metadata(gather(work, last_stage, units))
    n = table.num_rows
    per = max(1, run_cfg.output_shard_docs)
    n_shards = max(1, -(-n // per))
    images = ImageTable(image_table_dir) if image_table_dir else None
    outputs = write_outputs(table, str(out), ocfg, per, images)
    read = [s["read"] for s in unit_stats if "read" in s]
    stages = [s for s in unit_stats if "stage" in s]
    metrics = [{"metrics": s["metrics"], "thresholds": s.get("thresholds", {})} for s in unit_stats if "metrics" in s]
    shard_stats = [{"read": r} for r in read] + [{"stages": stages}] + metrics
    merged = merge_stats(shard_stats)
    merged["distributions"] = document_distributions(table.select(["texts", "images"]).to_pylist())
    merged["outputs"] = outputs
    merged["flow"] = merge_flow(s["flow"] for s in unit_stats if "flow" in s)
    flow = flow_counts(table)
    merged["summary"] = {"profile": profile.name, "units": len(units), "documents": flow["document"],
                         "images": flow["image"], "words": flow["word"], "parquet_shards": n_shards if "parquet" in ocfg.formats else 0,
                         "seconds": round(seconds, 2)}
    merged["timings"] = timings
    merged["cpu"] = cpu_summary(timings, (merged.get("read") or {}).get("html_records"))  # pipeline.cpu
    log.info("wrote %d documents, %d images in %d shard(s)", flow["document"], flow["image"], n_shards)
    return merged
