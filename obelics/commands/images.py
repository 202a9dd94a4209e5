"""``obelics images DOCS.parquet... --out DIR`` (or ``--work DIR``): fetch the documents' images into the image table.

The unique image URLs of every input go to img2dataset once (``--warc`` reads them from WARC image
records instead, downloading nothing); ``--merged OUT.parquet`` also writes the documents with their
images merged (failed images removed, counted by reason). Resumable: rerun the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from obelics.commands import result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("images", help="download (or read from WARCs) the documents' images into the image table",
                       description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="DOCS", help="document Parquet file(s)")
    p.add_argument("--work", "--out", dest="work", required=True,
                   help="work folder (URL list, img2dataset shards, image table); --out is the same")
    p.add_argument("--warc", action="append", default=[], help="read images from this WARC instead of the web")
    p.add_argument("--merged", help="write the documents with images merged to this Parquet file")
    p.add_argument("--profile", default="default", help="profile name or YAML (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from filters.base import FilterStats
    from obelics.parquet import write_table_atomic
    from pipeline.images.config import ImagesConfig
    from pipeline.images.download import unique_urls
    from pipeline.images.merge import STAGE, merge_table
    from pipeline.images.stage import fetch_images
    from pipeline.profile import load_profile  # every section validated at load

    cfg = load_profile(args.profile, args.set).section("images", ImagesConfig)
    urls = unique_urls(args.inputs)
    if args.warc:
        cfg = dataclasses.replace(cfg, source="warc")
    elif cfg.source == "warc":
        raise ValueError("images.source is 'warc': give the WARC files with --warc")
    table = fetch_images(urls, args.work, cfg, args.warc)
    counts = table.counts()
    summary = {"urls": len(urls), "by_reason": dict(counts.most_common())}
    if args.merged:
        stats = FilterStats(STAGE)
        docs = pa.concat_tables([pq.read_table(p) for p in args.inputs], promote_options="default")
        merged = merge_table(docs, table, stats)
        write_table_atomic(args.merged, merged, compression="zstd")
        summary["merge"] = stats.as_dict()
    result(json.dumps(summary, indent=2))
    return 0
