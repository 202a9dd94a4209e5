"""Text filter chain speed: documents/s on one core, beside the original's rate.

Inputs: the shared pages as the original extracted them (../shared/data/reference/shared_html.jsonl,
81 HTML pages, and shared_warc.jsonl, 144 WARC HTML records), so the figure measures the filters only.
``--extract`` instead extracts the HTML pages with ``obelics.extract_html`` first (not timed).

Configurations timed (one process, ``--repeat`` passes over the documents: the median pass reported, and the best):

- ``obelics-2023, reference checks``: the checks the original's 105 docs/s (HTML) / 361 docs/s (WARC)
  figure was measured with (../shared/data/reference/README.md): language id, perplexity, common words off;
- ``obelics-2023, all on``: + document-level language id (lid.176) and glued perplexity (KenLM);
- ``default, all on``: registry lists, per-paragraph perplexity, language id.

After the table, one more (instrumented) pass per configuration splits its CPU time between the node
level, the document checks before the models, language id and perplexity; the compiled metrics
(filters/fast_metrics.py, Numba) are on when Numba is installed, and the header says so.

Run: ``.venv/bin/python bench/bench_filters.py [--repeat 5] [--extract]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from filters.base import FilterStats  # noqa: E402
from filters.text_filters import filter_documents  # noqa: E402
from obelics.config import load_profile  # noqa: E402
from obelics.document import WebDocument  # noqa: E402

SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
ORIGINAL = {"html": 105.0, "warc": 361.0}  # docs/s, original filters (node + doc level), reference README


def load_reference(name: str) -> list[WebDocument]:
    docs = []
    for line in open(SHARED / "data" / "reference" / name, encoding="utf-8"):
        d = json.loads(line)
        meta = d["metadata"]
        meta = json.loads(meta) if isinstance(meta, str) else meta
        docs.append(WebDocument(list(d["texts"]), [i or None for i in d["images"]], list(meta), {"url": d["url"]}))
    return docs


def extract_pages() -> list[WebDocument]:
    import obelics

    pages = sorted((SHARED / "data" / "html").glob("*.html"))
    return [obelics.extract_html(p.read_bytes(), "https://example.com/" + p.name, profile="obelics-2023")
            for p in pages]


def time_chain(docs, profile, repeat: int) -> tuple[float, float, float, FilterStats]:
    """(docs per CPU-second: median and best of ``repeat`` passes, docs per wall-second: median, stats).

    CPU time of this process is the per-core figure: on a shared machine wall time also counts the
    time other processes held the core.
    """
    import statistics

    filter_documents(docs[:5], profile, FilterStats("warmup"))  # load word lists and models
    cpu, wall = [], []
    stats = None
    for _ in range(repeat):
        stats = FilterStats("text")
        c0, t0 = time.process_time(), time.perf_counter()
        filter_documents(docs, profile, stats)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return len(docs) / statistics.median(cpu), len(docs) / min(cpu), len(docs) / statistics.median(wall), stats


def timed_call(fn, spent: dict, key: str):
    """``fn`` that adds the CPU seconds of each call to ``spent[key]``."""
    def wrapper(*a, **k):
        c0 = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            spent[key] = spent.get(key, 0.0) + time.process_time() - c0
    return wrapper


def breakdown(docs, profile) -> dict[str, float]:
    """CPU milliseconds of one pass spent in each part of the chain (wrappers on the cached chain)."""
    from filters.text_filters import text_filter_for

    chain = text_filter_for(profile)
    spent: dict[str, float] = {}

    def timed(obj, name: str, key: str):
        setattr(obj, name, timed_call(getattr(obj, name), spent, key))

    parts = [(chain, "filter_nodes", "node level"), (chain, "document_verdict", "document checks")]
    if chain.langid is not None:  # the chain calls the batch forms (TextFilter.model_verdicts)
        parts.append((chain.langid, "verdicts", "language id"))
    if chain.perplexity is not None:
        parts.append((chain.perplexity, "document_verdicts", "perplexity"))
    for obj, name, key in parts:
        timed(obj, name, key)
    try:
        c0 = time.process_time()
        filter_documents(docs, profile, FilterStats("text"))
        spent["total"] = time.process_time() - c0
    finally:
        for obj, name, _ in parts:
            delattr(obj, name)  # back to the class's method
    return {k: v * 1000 for k, v in spent.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--extract", action="store_true", help="extract the HTML pages with obelics.extract_html")
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    except (AttributeError, OSError):
        pass

    sets = {"html": extract_pages() if args.extract else load_reference("shared_html.jsonl"),
            "warc": load_reference("shared_warc.jsonl")}
    configs = {
        "obelics-2023, reference checks (langid/ppl off)":
            load_profile("obelics-2023", ["langid.doc_level=false", "perplexity.doc_level=false"]),
        "obelics-2023, all on (langid + glued ppl)": load_profile("obelics-2023"),
        "default, all on (langid + per-paragraph ppl)": load_profile("default"),
    }
    from filters import fast_metrics
    from filters.langid import get_model
    from filters.perplexity import PerplexityConfig, get_scorer

    compiled = f"on (numba {fast_metrics.numba.__version__})" if fast_metrics.available() else "off (no numba)"
    print(f"language-id model: {get_model('auto').path.name}; perplexity model: "
          f"{get_scorer(PerplexityConfig()).name}; compiled metrics: {compiled}")
    print(f"{'set':5} {'docs':>5}  {'configuration':48} {'docs/cpu-s':>10} {'x original':>10} {'best':>7} "
          f"{'docs/wall-s':>11}  kept   (median of {args.repeat} passes; best: the fastest pass)")
    parts = {}
    for set_name, docs in sets.items():
        for cname, prof in configs.items():
            cpu_rate, best_rate, wall_rate, stats = time_chain(docs, prof, args.repeat)
            print(f"{set_name:5} {len(docs):5}  {cname:48} {cpu_rate:10.0f} {cpu_rate / ORIGINAL[set_name]:9.1f}x"
                  f" {best_rate / ORIGINAL[set_name]:6.1f}x {wall_rate:11.0f}  {stats.outputs['document']}")
            parts[set_name, cname] = breakdown(docs, prof)
    print(f"original: {ORIGINAL['html']:.0f} docs/s (HTML pages), {ORIGINAL['warc']:.0f} docs/s (WARC records), "
          "langid/perplexity off, one process on a 2-core machine")
    keys = ["node level", "document checks", "language id", "perplexity", "total"]
    print("\nCPU ms of one instrumented pass, by part (document checks: those before the models)")
    print(f"{'set':5} {'configuration':48} " + " ".join(f"{k:>15}" for k in keys))
    for (set_name, cname), spent in parts.items():
        print(f"{set_name:5} {cname:48} " + " ".join(f"{spent.get(k, 0.0):15.1f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
