"""``obelics filter IN.parquet -o OUT.parquet --profile P``: text filters (and final processing) on documents."""

from __future__ import annotations

import argparse
import json

import pyarrow as pa

from filters.base import FilterStats
from obelics.commands import result

STAGES = ("text", "final", "text+final")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("filter", help="paragraph/document text filters, language id, perplexity, final processing",
                       description="Read documents from Parquet, apply the profile's text filters (node then "
                                   "document level, with language id and perplexity as the profile says) "
                                   "and/or final processing, write the kept documents and print the counts by reason.")
    p.add_argument("input", help="input Parquet of documents (toolkit or Hub schema)")
    p.add_argument("-o", "--output", required=True, help="output Parquet of the kept documents")
    p.add_argument("--profile", default="default", help="profile name or YAML (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    p.add_argument("--stage", choices=STAGES, default="text", help="what to run (default: text)")
    p.add_argument("--rejects", help="also write the dropped documents, with a `reason` column, to this Parquet")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--stats-json", help="write the counts as JSON to this file")
    p.set_defaults(func=main)


def reject_schema() -> pa.Schema:
    from obelics.document import DOCUMENT_SCHEMA

    return DOCUMENT_SCHEMA.append(pa.field("reason", pa.string()))


def _batches(it, n):
    batch = []
    for x in it:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def run_filter(input_path, output_path, profile, stage: str = "text", rejects_path=None,
               batch_size: int = 256) -> dict[str, FilterStats]:
    """Filter ``input_path`` into ``output_path``; returns the stats of each stage run."""
    from filters.final import FINAL
    from filters.step import run_step
    from filters.text_filters import TEXT_FILTERS
    from obelics.document import documents_to_table
    from obelics.parquet import ParquetDocumentWriter, read_documents

    stats = {}
    if "text" in stage:
        stats["text"] = FilterStats("text_filters")
    if "final" in stage:
        stats["final"] = FilterStats("final_processing")
    rej_writer = ParquetDocumentWriter(rejects_path, reject_schema()) if rejects_path else None
    try:
        with ParquetDocumentWriter(output_path) as out:
            for batch in _batches(read_documents(input_path), batch_size):
                rejects: list | None = [] if rej_writer else None
                if "text" in stats:
                    batch = run_step(TEXT_FILTERS, batch, profile, stats=stats["text"], rejects=rejects,
                                     metrics=False)[0]
                if "final" in stats:
                    batch = run_step(FINAL, batch, profile, stats=stats["final"], rejects=rejects)[0]
                for d in batch:
                    out.write(d)
                if rej_writer and rejects:
                    table = documents_to_table([d for d, _ in rejects])
                    table = table.append_column("reason", pa.array([r for _, r in rejects], pa.string()))
                    rej_writer.write_table(table)
        if rej_writer:
            rej_writer.close()
    except BaseException:
        if rej_writer:
            rej_writer.abort()
        raise
    return stats


def format_stats(stats: dict[str, FilterStats]) -> str:
    lines = []
    for s in stats.values():
        d = s.as_dict()
        lines.append(f"{d['stage']}: documents in {d['in'].get('document', 0)}, kept {d['out'].get('document', 0)}")
        for level, reasons in d["dropped"].items():
            for reason, n in reasons.items():
                lines.append(f"  dropped {level}:{reason}  {n}")
        for level in ("node", "paragraph"):
            if level in d["in"]:
                lines.append(f"  {level}s in {d['in'][level]}, kept {d['out'].get(level, 0)}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from pipeline.preflight import check_pins
    from pipeline.profile import load_profile, validate  # every section validated at load

    profile = load_profile(args.profile, args.set)
    check_pins(validate(profile))  # obelics-2023 without its pins: one line
    stats = run_filter(args.input, args.output, profile, args.stage, args.rejects, args.batch_size)
    result(format_stats(stats))
    if args.stats_json:
        from obelics.storage import write_text_atomic

        write_text_atomic(args.stats_json, json.dumps({k: s.as_dict() for k, s in stats.items()}, indent=1))
    return 0
