"""``obelics report OUT_DIR``: merge the shards' stats.json into OUT_DIR/stats.json and write report.html."""

from __future__ import annotations

import argparse
import sys

from obelics.commands import result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="funnel report of a run: stats.json + report.html", description=__doc__)
    p.add_argument("out_dir", metavar="OUT_DIR", help="the run's output folder (local or s3://...)")
    p.add_argument("--stats", nargs="*", help="shard stats.json files (default: every stats.json below OUT_DIR)")
    p.add_argument("--profile", help="profile name shown in the report")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from obelics.storage import join
    from pipeline.report import build_report
    from pipeline.report.funnel import funnel_markdown

    merged = build_report(args.out_dir, args.stats, args.profile)
    result(funnel_markdown(merged))
    print(f"wrote {join(args.out_dir, 'stats.json')} and {join(args.out_dir, 'report.html')}", file=sys.stderr)
    return 0
