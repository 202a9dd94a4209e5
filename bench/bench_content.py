"""Main-content extraction quality and speed on ../shared/data/content-bench (181 article pages, hand-made truth).

Scores, in one run and on the same decoded pages, with the benchmark's own metric (word 4-gram shingles,
per-page normalised tp/fp/fn, P/R/F1 from the sums; ../shared/data/content-bench/README.md):

- ``default`` before: the ``default`` profile with ``extract.main_content: off`` (the rules before issue 16);
- ``default``: the profile as shipped (with the main-content decision);
- ``obelics-2023``: the original build's rules;
- ``default, <figcaption> removed``: ``default`` on the pages without their ``<figcaption>`` elements, scored
  only: ``default`` keeps captions as text (on purpose), the truth does not count them;
- ``trafilatura``: ``extract(include_tables=True, include_comments=False)``, run in its own environment
  (``bash bench/setup_content_env.sh`` makes build/bench-content-venv), one process, same pages.

Pages are split once, by a hash of the file name, into ``dev`` (tuned on) and ``heldout`` (never tuned on,
about a fifth); both are reported, and ``all``. Speed is pages/s of one process over the decoded HTML strings
(parse + extraction, no I/O) in CPU seconds of that process (less sensitive than wall time to other jobs on
shared cores), best of ``--repeat`` passes; compare speeds only within one run.

    .venv/bin/python -m bench.bench_content                 # everything
    .venv/bin/python -m bench.bench_content --no-trafilatura --repeat 1
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data" / "content-bench"
BENCH_VENV = ROOT / "build" / "bench-content-venv"
_WORD = re.compile(r"\w+")

TRAFILATURA_SCRIPT = r"""
import json, sys, time
import trafilatura
pages = [json.loads(line) for line in open(sys.argv[1])]
repeat = int(sys.argv[2])
out, best = None, None
for _ in range(repeat):
    t = time.process_time()
    res = [trafilatura.extract(p["html"], include_tables=True, include_comments=False) or "" for p in pages]
    dt = time.process_time() - t
    best = dt if best is None else min(best, dt)
    out = res
print(json.dumps({"version": trafilatura.__version__, "seconds": best, "texts": out}))
"""


def split_of(key: str) -> str:
    """``heldout`` for about a fifth of the pages (fixed by the file name's hash), else ``dev``."""
    return "heldout" if hashlib.sha256(f"{key}.html.gz".encode()).digest()[0] % 5 == 0 else "dev"


@dataclass
class Page:
    key: str
    url: str
    html: str
    truth: str
    split: str


def load_pages(data: Path = DATA) -> list[Page]:
    """The benchmark's pages, decoded as a browser would (the ``default`` decoding rule), sorted by key."""
    from obelics.html.decode import decode_default

    truth = json.loads((data / "ground-truth.json").read_text())
    pages = []
    for key in sorted(truth):
        raw = gzip.decompress((data / "html" / f"{key}.html.gz").read_bytes())
        pages.append(Page(key, truth[key]["url"], decode_default(raw, None), truth[key]["articleBody"] or "",
                          split_of(key)))
    return pages


def _shingles(text: str) -> Counter:
    words = _WORD.findall(text)
    return Counter(tuple(words[i:i + 4]) for i in range(max(len(words) - 3, 0)))


def page_counts(truth: str, predicted: str) -> tuple[float, float, float]:
    """The page's (tp, fp, fn) over word 4-gram shingles with multiplicity, divided by their sum."""
    t, p = _shingles(truth), _shingles(predicted)
    tp = sum(min(c, p[s]) for s, c in t.items())
    fp = sum(max(0, c - t[s]) for s, c in p.items())
    fn = sum(max(0, c - p[s]) for s, c in t.items())
    total = tp + fp + fn
    if total == 0:  # nothing true and nothing predicted: a perfect (empty) page
        return 1.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def score(truths: list[str], predictions: list[str]) -> dict:
    """``{"f1", "precision", "recall"}`` of the benchmark: sums of per-page normalised counts."""
    tp = fp = fn = 0.0
    for t, p in zip(truths, predictions, strict=True):
        a, b, c = page_counts(t, p)
        tp, fp, fn = tp + a, fp + b, fn + c
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def document_text(texts: list) -> str:
    """A document's predicted text: its text nodes joined with newlines."""
    return "\n".join(t for t in texts if t)


def ours(pages: list[Page], cfg, repeat: int) -> tuple[list[str], float]:
    """Predicted texts and the best time of ``repeat`` passes of ``obelics.extract_html`` over the pages
    (``obelics-2023`` with its production bs4 round trip)."""
    from obelics.extract import extract_html

    best, out = None, None
    for _ in range(repeat):
        t = time.process_time()
        res = [document_text(extract_html(p.html, p.url, cfg).texts) for p in pages]
        dt = time.process_time() - t
        best = dt if best is None else min(best, dt)
        out = res
    return out, best


def without_figcaptions(html: str) -> str:
    """The page with its ``<figcaption>`` elements removed: the ``default`` profile keeps an image's caption
    as text after it (an image-text dataset wants it), the benchmark's truth (schema.org ``articleBody``)
    leaves captions out; scoring this page shows what the body alone scores."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    for node in tree.css("figcaption"):
        node.decompose()
    return tree.html or ""


def trafilatura_run(pages: list[Page], repeat: int, python: Path | None = None) -> tuple[list[str], float, str] | str:
    """trafilatura's texts, best time and version from its own environment, or why it was not measured."""
    py = python or BENCH_VENV / "bin" / "python"
    if not py.exists():
        return f"not measured: run bash bench/setup_content_env.sh to create {BENCH_VENV}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pages.jsonl"
        with src.open("w") as f:
            for p in pages:
                f.write(json.dumps({"html": p.html}) + "\n")
        script = Path(tmp) / "run.py"
        script.write_text(TRAFILATURA_SCRIPT)
        out = subprocess.run([str(py), str(script), str(src), str(repeat)], capture_output=True, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        return "failed: " + out.stderr[-500:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["texts"], res["seconds"], res["version"]


def profiles() -> dict:
    """The extract sections compared: name -> ExtractConfig."""
    import dataclasses

    from obelics.extract import extract_config

    after = extract_config("default")
    return {"default before (main_content: off)": dataclasses.replace(after, main_content=False),
            "default": after,
            "obelics-2023": extract_config("obelics-2023")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per extractor (best kept)")
    ap.add_argument("--no-trafilatura", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated extractor names to run (default: all)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--worst", type=int, default=0, help="print the N worst dev pages of `default`")
    args = ap.parse_args(argv)
    if not (args.data / "ground-truth.json").exists():
        print(f"bench_content: no benchmark at {args.data}", file=sys.stderr)
        return 2
    pages = load_pages(args.data)
    truths = [p.truth for p in pages]
    splits = {"dev": [i for i, p in enumerate(pages) if p.split == "dev"],
              "heldout": [i for i, p in enumerate(pages) if p.split == "heldout"],
              "all": list(range(len(pages)))}
    runs = {}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    for name, cfg in profiles().items():
        if only and name not in only:
            continue
        texts, seconds = ours(pages, cfg, args.repeat)
        runs[name] = (texts, len(pages) / seconds)
    captionless = "default, no <figcaption> (score only)"
    if "default" in runs:  # same extraction on pages without figure captions: quality only, no speed
        from obelics.extract import extract_html

        cfg = profiles()["default"]
        runs[captionless] = ([document_text(extract_html(without_figcaptions(p.html), p.url, cfg).texts)
                              for p in pages], None)
    if not args.no_trafilatura and (not only or "trafilatura" in only):
        res = trafilatura_run(pages, args.repeat)
        if isinstance(res, str):
            print(f"trafilatura: {res}")
        else:
            runs[f"trafilatura {res[2]}"] = (res[0], len(pages) / res[1])
    print(f"{len(pages)} pages: dev {len(splits['dev'])}, heldout {len(splits['heldout'])}; speed = pages/s, "
          f"one process, best of {args.repeat}")
    head = f"{'extractor':38s}" + "".join(f" | {s + ' F1/P/R':>22s}" for s in splits) + " | pages/s"
    print(head)
    print("-" * len(head))
    table = {}
    for name, (texts, pps) in runs.items():
        row = {}
        line = f"{name:38s}"
        for s, idx in splits.items():
            sc = score([truths[i] for i in idx], [texts[i] for i in idx])
            row[s] = {k: round(v, 4) for k, v in sc.items()}
            line += " | " + f"{sc['f1']:.3f} {sc['precision']:.3f} {sc['recall']:.3f}".rjust(22)
        row["pages_per_s"] = round(pps, 1) if pps else None
        table[name] = row
        print(line + (f" | {pps:8.1f}" if pps else " |        -"))
    traf = next((n for n in runs if n.startswith("trafilatura")), None)
    if traf and "default" in runs:
        ratio = runs["default"][1] / runs[traf][1]
        table["speed_ratio_default_vs_trafilatura"] = round(ratio, 2)
        print(f"speed: default / trafilatura = {ratio:.1f}x")
    if args.worst and "default" in runs:
        texts = runs["default"][0]
        rows = []
        for i in splits["dev"]:
            tp, fp, fn = page_counts(truths[i], texts[i])
            rows.append((tp, fp, fn, pages[i].key[:12], pages[i].url))
        for tp, fp, fn, key, url in sorted(rows)[:args.worst]:
            print(f"  tp {tp:.2f} fp {fp:.2f} fn {fn:.2f}  {key}  {url}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
