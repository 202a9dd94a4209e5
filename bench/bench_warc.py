"""WARC reading cost: CPU ms per record and per HTML page of the reader, with and without its one-record path.

Two inputs, both made here from the shared WARCs:

- ``shared``: one unit of the realistic bench corpus (:mod:`bench.corpus`, ``--copies`` copies of every shared
  WARC): about 6 records per HTML page (requests, revisits, metadata, images, other responses);
- ``cc``: Common Crawl's shape: a warcinfo record, then per page a request, the response and a metadata
  record (3 records a page), the responses being the shared WARCs' HTML records.

For each, in one process (CPU time, ``--repeat`` passes, median): ``obelics.warc.iter_html_records`` and the
pipeline's reader (``html_records_locating_images``, which also notes the image records), with the one-record
path (a member holding one well-formed record parsed from its bytes, HTTP headers of responses only) and
without it (every member through warcio's ``ArchiveIterator``: the reader before issue 17). Both give the
same records and counts (checked here on every pass), and the decompression floor (zlib alone) is printed.

    python -m bench.bench_warc [--copies 4] [--pages 3000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cc_shaped(pages: int, path: Path) -> None:
    """A WARC.gz shaped like Common Crawl's: warcinfo, then request / response / metadata per page."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from bench.bench_extract import html_records_of_shared_warcs

    responses = html_records_of_shared_warcs()
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "bench_warc", "format": "WARC/1.0"}))
        for i in range(pages):
            member = responses[i % len(responses)]
            head = zlib.decompressobj(31).decompress(member, 4096)
            url = next((ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n")
                        if ln.lower().startswith(b"warc-target-uri:")), f"https://example.org/{i}")
            http = StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", "example.org"), ("User-Agent", "CCBot/2.0"),
                                                            ("Accept", "text/html"), ("Accept-Encoding", "gzip")],
                                    is_http_request=True)
            w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=http))
            f.write(member)
            meta = b"fetchTimeMs: 120\r\ncharset-detected: UTF-8\r\nlanguages-cld2: {\"reliable\":true}\r\n"
            w.write_record(w.create_warc_record(url, "metadata", payload=io.BytesIO(meta),
                                                warc_content_type="application/warc-fields"))


def floor_ms(path: Path) -> float:
    """CPU ms to inflate every gzip member of ``path`` with zlib alone (nothing parsed)."""
    data = path.read_bytes()
    c0 = time.process_time()
    view, pos = memoryview(data), 0
    while 0 <= pos < len(data):
        d, start, chunk = zlib.decompressobj(31), pos, 1 << 16
        try:
            while not d.eof and pos < len(data):
                d.decompress(view[pos:pos + chunk])
                pos += chunk
        except zlib.error:  # a damaged member: on to the next gzip header
            pos = data.find(b"\x1f\x8b\x08", start + 1)
            continue
        if not d.eof:
            break
        pos -= len(d.unused_data)
    return (time.process_time() - c0) * 1000


def read_once(path: Path, locate: bool, one_record: bool):
    from obelics import warc
    from obelics.records import ReadStats
    from pipeline.images.offline import html_records_locating_images

    warc.ONE_RECORD_PATH = one_record
    stats, found, digest = ReadStats(), [], 0
    try:
        c0 = time.process_time()
        it = html_records_locating_images(str(path), None, stats, found) if locate else warc.iter_html_records(str(path), None, stats)
        for rec in it:
            digest = zlib.crc32(rec.payload, digest)
        cpu = time.process_time() - c0
    finally:
        warc.ONE_RECORD_PATH = True
    return cpu, (digest, stats.as_dict(), found)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of the shared WARCs in the 'shared' unit")
    ap.add_argument("--pages", type=int, default=3000, help="HTML pages of the 'cc' file")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    try:
        import os

        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    tmp = Path(tempfile.mkdtemp(prefix="bench-warc-"))
    from bench.bench_pipeline import shared_warcs
    from bench.corpus import realistic_corpus

    inputs = {"shared": Path(realistic_corpus(shared_warcs(), tmp, args.copies, 1)[0]), "cc": tmp / "cc.warc.gz"}
    cc_shaped(args.pages, inputs["cc"])
    print(f"CPU ms (median of {args.repeat} passes, one process on one core); 'before': every member through "
          "ArchiveIterator")
    print(f"{'input':7} {'reader':22} {'records':>7} {'pages':>6} {'ms/record before':>17} {'after':>7} "
          f"{'ms/page before':>15} {'after':>7} {'CPU saved':>9}  {'zlib floor ms/record':>20}")
    for name, path in inputs.items():
        floor = statistics.median(floor_ms(path) for _ in range(3))
        for locate in (False, True):
            cpu = {True: [], False: []}
            ref = None
            for _ in range(args.repeat):
                for one in (False, True):
                    c, result = read_once(path, locate, one)
                    ref = ref or result
                    if result != ref:
                        raise SystemExit(f"{name}: the two paths disagree")
                    cpu[one].append(c)
            _, st, _ = ref
            before, after = (statistics.median(cpu[k]) * 1000 for k in (False, True))
            recs, pages = st["records"], st["html_records"]
            label = "pipeline (locating)" if locate else "iter_html_records"
            print(f"{name:7} {label:22} {recs:7} {pages:6} {before / recs:17.4f} {after / recs:7.4f} "
                  f"{before / pages:15.3f} {after / pages:7.3f} {1 - after / before:8.0%}  {floor / recs:20.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
