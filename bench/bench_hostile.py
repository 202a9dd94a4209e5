"""Pathological pages for both extraction profiles: time and peak memory per page at 4 sizes.

Pages: ``deep`` (n nested ``<div>``, closed), ``unclosed`` (n ``<div><section>`` never closed, text
between), ``text`` (one text node of n characters), ``attribute`` (an ``<img>`` with an n-character
attribute), ``images`` (n ``<img>``). Each page is extracted in a fresh process (so its peak RSS is its
own: ``ru_maxrss`` after minus before, lexbor's C memory included) through ``obelics.extract_html`` with
the profile's per-page budget; a page over the budget reports its skip reason instead.

    python bench/bench_hostile.py [--profiles default obelics-2023] [--kinds deep images] [--scale 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # n per kind, four sizes doubling
    "deep": [625, 1250, 2500, 5000],
    "unclosed": [312, 625, 1250, 2500],  # depth 2n
    "text": [1_000_000, 2_000_000, 4_000_000, 8_000_000],
    "attribute": [1_000_000, 2_000_000, 4_000_000, 8_000_000],
    "images": [12_500, 25_000, 50_000, 100_000],
}
EXTRA = {"deep": 10000, "unclosed": 5000}  # past the depth cap (5,000): skipped before parsing


def page(kind: str, n: int) -> str:
    """The pathological page of ``kind`` at size ``n``."""
    if kind == "deep":
        return "<html><body>" + "<div>" * n + "<p>deep text</p>" + "</div>" * n + "</body></html>"
    if kind == "unclosed":
        return "<html><body>" + "<div><section>some words " * n
    if kind == "text":
        return "<html><body><p>" + ("word " * (n // 5)) + "</p></body></html>"
    if kind == "attribute":
        return ('<html><body><p>a paragraph of words</p><img src="https://e.com/a.jpg" alt="' + "a" * n
                + '"><p>more words</p></body></html>')
    if kind == "images":
        return "<html><body><p>images</p>" + "".join(
            f'<img src="https://e.com/i/{i}.jpg" width="300" height="200">' for i in range(n)) + "</body></html>"
    raise ValueError(kind)


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from bench.bench_hostile import page
from obelics import extract_html
from obelics.budget import PageBudgetExceeded
profile, kind, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
extract_html("<html><body><p>warm up</p><img src='https://e.com/x.jpg'></body></html>", "https://e.com/", profile)
html = page(kind, n)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    doc = extract_html(html, "https://e.com/page.html", profile)
    out = {"texts": doc.num_texts, "images": doc.num_images}
except PageBudgetExceeded as e:
    out = {"skipped": e.skip_reason}
out["seconds"] = time.perf_counter() - t
out["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
out["page_mb"] = len(html) / 1e6
print(json.dumps(out))
"""


def measure(profile: str, kind: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), profile, kind, str(n)], capture_output=True,
                       text=True, env=env, timeout=900)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"rc {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["default", "obelics-2023"])
    ap.add_argument("--kinds", nargs="+", default=list(SIZES))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows = []
    print("| profile | page | n | page MB | seconds | peak MB | result |")
    print("|---|---|---:|---:|---:|---:|---|")
    for profile in args.profiles:
        for kind in args.kinds:
            for n in SIZES[kind] + ([EXTRA[kind]] if kind in EXTRA else []):
                m = measure(profile, kind, n)
                rows.append({"profile": profile, "kind": kind, "n": n, **m})
                result = m.get("skipped") or m.get("error") or f"{m['texts']} texts, {m['images']} images"
                print(f"| {profile} | {kind} | {n:,} | {m.get('page_mb', 0):.2f} | {m.get('seconds', 0):.3f} | "
                      f"{m.get('peak_mb', 0):.0f} | {result} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
