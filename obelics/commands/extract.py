"""``obelics extract INPUT... -o OUT.parquet``: WARC files/URLs and HTML files -> documents in Parquet.

A WARC input is a local ``.warc``/``.warc.gz`` (detected by its first bytes) or an http(s) URL;
every other input is an HTML file whose page URL comes from ``--url`` (one HTML input) or from a
``--urls`` TSV of ``path<TAB>url`` lines. Documents are written atomically (temporary name, then
rename); the closing summary gives the counts by reason.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

log = logging.getLogger("obelics.extract")

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc.gz")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="WARC / HTML files -> interleaved documents (Parquet)",
                       description="Extract interleaved text/image documents from WARC files (local or "
                                   "http(s) URLs, e.g. https://data.commoncrawl.org/crawl-data/...) and "
                                   "HTML files, and write them to one Parquet file.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="WARC file or URL, or HTML file")
    p.add_argument("-o", "--output", required=True, help="output Parquet file")
    p.add_argument("--profile", default="default", help="profile name or YAML (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set warc.max_record_bytes=5000000")
    p.add_argument("--url", help="page URL of the HTML input (only with a single HTML input)")
    p.add_argument("--urls", metavar="TSV", help="TSV of path<TAB>url giving the page URL of each HTML input")
    p.add_argument("--stats-json", help="also write the counts as JSON to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def is_warc_input(source: str) -> bool:
    """A URL, a ``.warc[.gz]`` name, or a file starting like a WARC or a gzip stream."""
    from obelics.warc import is_url

    if is_url(source) or source.lower().endswith(WARC_SUFFIXES):
        return True
    try:
        with open(source, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith((b"WARC/", b"\x1f\x8b"))


def read_url_map(path: str | Path) -> dict[str, str]:
    """``path<TAB>url`` lines (a header line ``path<TAB>url`` and ``#`` comments are ignored)."""
    out: dict[str, str] = {}
    base = Path(path).resolve().parent
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or row[0].startswith("#") or (n == 1 and row[:2] == ["path", "url"]):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{n}: expected path<TAB>url")
            p = Path(row[0])
            out[str((p if p.is_absolute() else base / p).resolve())] = row[1].strip()
    return out


def html_url(path: str, single_url: str | None, url_map: dict[str, str]) -> str:
    resolved = str(Path(path).resolve())
    if resolved in url_map:
        return url_map[resolved]
    if single_url:
        return single_url
    raise ValueError(f"no page URL for HTML input {path}: give --url or a --urls TSV (path<TAB>url)")


def run_extract(inputs: list[str], output: str | Path, profile="default", overrides: list[str] | None = None,
                url: str | None = None, urls_tsv: str | None = None, progress: bool = True) -> dict:
    """Extract every input into ``output``; returns the summary counts."""
    from tqdm import tqdm

    from obelics.extract import extract_html, extract_or_skip, iter_warc_documents
    from obelics.parquet import ParquetDocumentWriter
    from obelics.records import ReadStats
    from obelics.warc import WarcConfig, is_url
    from pipeline.profile import load_profile  # every section validated at load

    prof = load_profile(profile, overrides)
    wcfg = prof.section("warc", WarcConfig)
    warcs = [s for s in inputs if is_warc_input(s)]
    htmls = [s for s in inputs if s not in warcs]
    for s in inputs:
        if not is_url(s) and not Path(s).exists():
            raise FileNotFoundError(f"input not found: {s}")
    if url and len(htmls) != 1:
        raise ValueError(f"--url needs exactly one HTML input, got {len(htmls)}")
    url_map = read_url_map(urls_tsv) if urls_tsv else {}
    page_urls = {s: html_url(s, url, url_map) for s in htmls}

    stats = ReadStats()
    counts: Counter = Counter()
    start = time.perf_counter()
    bar = tqdm(unit="page", desc="extract", disable=not progress or None, dynamic_ncols=True)

    def count(doc) -> None:
        counts["documents"] += 1
        counts["images"] += doc.num_images
        counts["text_nodes"] += doc.num_texts
        if not doc.texts:
            counts["empty_documents"] += 1
        bar.update(1)
        bar.set_postfix(docs=counts["documents"], imgs=counts["images"], refresh=False)

    with ParquetDocumentWriter(output) as writer:
        for source in warcs:
            bar.set_description(f"extract {Path(source).name}")
            one = ReadStats()
            try:
                for doc in iter_warc_documents(source, profile=prof, stats=one, warc_config=wcfg):
                    writer.write(doc)
                    count(doc)
            except (OSError, ValueError) as e:  # a WARC that cannot be opened or fetched: counted
                counts["inputs_failed"] += 1
                one.skip(f"input_error:{type(e).__name__}")
                log.error("%s: %s", source, e)
            stats.merge(one)
            counts["warc_inputs"] += 1
        for source in htmls:
            bar.set_description(f"extract {Path(source).name}")
            payload = Path(source).read_bytes()
            stats.bytes_read += len(payload)
            doc = extract_or_skip(stats, extract_html, payload, page_urls[source], profile=prof)
            if doc is None:
                log.error("%s: extraction failed, skipped", source)
                continue
            stats.html_records += 1
            writer.write(doc)
            count(doc)
            counts["html_inputs"] += 1
    bar.close()
    seconds = time.perf_counter() - start
    return {"inputs": len(inputs), **stats.as_dict(), **counts, "seconds": round(seconds, 3),
            "output": str(output)}


def format_summary(s: dict) -> str:
    lines = [
        f"inputs: {s['inputs']} ({s.get('warc_inputs', 0)} WARC, {s.get('html_inputs', 0)} HTML"
        + (f", {s['inputs_failed']} failed" if s.get("inputs_failed") else "") + ")",
        f"WARC records: {s['records']}, HTML pages read: {s['html_records']} ({s['bytes_read'] / 1e6:.1f} MB)",
        f"documents: {s.get('documents', 0)} (empty: {s.get('empty_documents', 0)}), "
        f"images: {s.get('images', 0)}, text nodes: {s.get('text_nodes', 0)}",
    ]
    if s["skipped"]:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(s["skipped"].items(), key=lambda kv: -kv[1])))
    if s.get("recovered"):
        lines.append("recovered: " + ", ".join(f"{k} {v}" for k, v in s["recovered"].items()))
    if s.get("retries"):
        lines.append(f"http retries: {s['retries']}")
    rate = s.get("documents", 0) / s["seconds"] if s["seconds"] else 0.0
    lines.append(f"wrote {s['output']} in {s['seconds']:.1f} s ({rate:.0f} documents/s)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from pipeline.preflight import check_pins
    from pipeline.profile import load_profile, validate

    check_pins(validate(load_profile(args.profile, args.set)))  # obelics-2023 without its pins: one line
    summary = run_extract(args.inputs, args.output, args.profile, args.set, args.url, args.urls,
                          progress=not args.no_progress)
    if not getattr(args, "quiet", False):
        print(format_summary(summary), file=sys.stderr)
    if args.stats_json:
        from obelics.storage import write_text_atomic

        write_text_atomic(args.stats_json, json.dumps(summary, indent=2, sort_keys=True))
    return 1 if summary.get("inputs_failed") else 0
