"""Compare the ``default`` and ``obelics-2023`` extraction profiles on the shared pages.

Runs both profiles on the same pages (../shared/data/html and the HTML records of ../shared/data/warc,
the pages of the fidelity test), prints the images and words each keeps, and writes a sample of the
extra content ``default`` keeps (text lines and images absent from the ``obelics-2023`` output) so a
person can check it is real page content, not menus or ads. Then the main-content decision (issue 16):
``default`` with ``extract.main_content: off`` (before) and on (after), words and images kept after
extraction and after the ``default`` profile's paragraph and document filters, and the images the decision
drops. Also times both profiles and a parse floor
(one lexbor parse + one walk of every node) in the same run, on decoded strings, single process, in
CPU seconds (best of 3; obelics-2023 once).

    .venv/bin/python bench/compare_profiles.py [--shared ../shared] [--sample 40] [--out build/bench]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from obelics.document import domain_of  # noqa: E402
from obelics.extract import extract_config, extract_html  # noqa: E402
from obelics.html.decode import decode_default  # noqa: E402
from obelics.html.reference_data import iter_reference_pages  # noqa: E402

_WORD = re.compile(r"\w+")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _words(doc) -> int:
    return sum(len(_WORD.findall(t)) for t in doc.texts if t)


def compare(pages, sample_size: int, seed: int = 0):
    totals = {"default": {"images": 0, "words": 0, "texts": 0}, "obelics-2023": {"images": 0, "words": 0, "texts": 0}}
    extra = []
    dropped = []  # obelics-2023 images that default does not keep
    more_images = fewer_images = 0
    for page in pages:
        old = extract_html(page.payload, page.url, profile="obelics-2023")
        new = extract_html(page.payload, page.url, profile="default")
        for name, doc in (("default", new), ("obelics-2023", old)):
            totals[name]["images"] += doc.num_images
            totals[name]["texts"] += doc.num_texts
            totals[name]["words"] += _words(doc)
        more_images += new.num_images > old.num_images
        fewer_images += new.num_images < old.num_images
        old_text = _norm(" ".join(t for t in old.texts if t))
        old_srcs = {m["src"] for m in old.metadata if m} | {m["unformatted_src"] for m in old.metadata if m}
        new_srcs = {m["src"] for m in new.metadata if m} | {m["unformatted_src"] for m in new.metadata if m}
        for meta in old.metadata:
            if meta and meta["src"] not in new_srcs and meta["unformatted_src"] not in new_srcs:
                dropped.append({"page": page.key, "url": page.url, "kind": "image", "value": meta["src"],
                                "alt": meta.get("alt_text", "")})
        for kind, value, meta in new.nodes():
            if kind == "image":
                if value not in old_srcs and meta["unformatted_src"] not in old_srcs:
                    extra.append({"page": page.key, "url": page.url, "kind": "image", "value": value,
                                  "alt": meta.get("alt_text", "")})
            else:
                for line in value.split("\n"):
                    line = _norm(line)
                    if len(_WORD.findall(line)) >= 1 and line not in old_text:
                        extra.append({"page": page.key, "url": page.url, "kind": "text", "value": line})
    # one random item per site, sites in random order, so that no single site fills the sample
    rng = random.Random(seed)
    by_page: dict[str, list] = {}
    for e in extra:
        by_page.setdefault(domain_of(e["url"]), []).append(e)
    keys = sorted(by_page)
    rng.shuffle(keys)
    sample = [rng.choice(by_page[k]) for k in keys[:sample_size]]
    by_page = {}
    for e in dropped:
        by_page.setdefault(domain_of(e["url"]), []).append(e)
    keys = sorted(by_page)
    rng.shuffle(keys)
    dropped_sample = [rng.choice(by_page[k]) for k in keys[:sample_size]]
    return totals, extra, sample, more_images, fewer_images, dropped, dropped_sample


def content_funnel(pages) -> dict:
    """Words, images and documents of ``default`` before (``main_content: off``) and after the main-content
    decision, straight from extraction and after the profile's text filters (paragraph and document level,
    language id and perplexity included); plus the images only one of them keeps."""
    import dataclasses

    from filters.base import FilterStats
    from filters.text_filters import filter_documents

    after_cfg = extract_config("default")
    cfgs = {"before": dataclasses.replace(after_cfg, main_content=False), "after": after_cfg}
    out = {}
    srcs = {}
    for name, cfg in cfgs.items():
        docs = [extract_html(p.payload, p.url, profile=cfg) for p in pages]
        srcs[name] = [{u for u in d.images if u} for d in docs]
        row = {"documents": sum(1 for d in docs if d.num_texts or d.num_images),
               "words": sum(_words(d) for d in docs), "images": sum(d.num_images for d in docs),
               "paragraphs": sum(sum(t.count("\n\n") + 1 for t in d.texts if t) for d in docs)}
        stats = FilterStats("text_filters")
        kept = filter_documents([d for d in docs if d.num_texts], "default", stats)
        row["filtered"] = {"documents": len(kept), "words": sum(_words(d) for d in kept),
                           "images": sum(d.num_images for d in kept),
                           "paragraphs_dropped": sum(stats.dropped.get("paragraph", {}).values()),
                           "documents_dropped": sum(stats.dropped.get("document", {}).values())}
        out[name] = row
    out["images_only_before"] = sum(len(b - a) for b, a in zip(srcs["before"], srcs["after"], strict=True))
    out["images_only_after"] = sum(len(a - b) for b, a in zip(srcs["before"], srcs["after"], strict=True))
    return out


def timing(pages, repeats: int = 3):
    """Pages/s of the parse floor and both profiles on the same decoded strings (best of ``repeats``)."""
    from selectolax.lexbor import LexborHTMLParser

    from obelics.html.extract_2023 import tree_to_nodes
    from obelics.html.extract_default import extract_nodes
    from obelics.html.simplify_2023 import Simplify2023Config, simplify_2023

    docs = [(decode_default(p.payload, p.identified_charset), p.url) for p in pages]
    cfg_default = extract_config("default")
    c23 = extract_config("obelics-2023")
    cfg_2023 = Simplify2023Config(css_rules=list(c23.css_remove), css_rules_replace_with_text=dict(c23.css_replace))

    def floor(html, url):
        for _ in LexborHTMLParser(html).root.traverse(include_text=True):
            pass

    def default(html, url):
        extract_nodes(html, url, cfg_default)

    def o2023(html, url):  # simplification + extraction, without the bs4 step
        tree_to_nodes(simplify_2023(html, cfg_2023), url)

    def o2023_full(html, url):  # with the production bs4 round trip
        extract_html(html, url, profile="obelics-2023")

    out = {}
    for name, fn, reps in (("parse floor", floor, repeats), ("default", default, repeats),
                           ("obelics-2023 (no bs4)", o2023, 1), ("obelics-2023 (bs4 + extraction)", o2023_full, 1)):
        best = float("inf")
        for _ in range(reps):
            t = time.process_time()  # CPU time: less sensitive than wall time to other jobs on shared cores
            for html, url in docs:
                fn(html, url)
            best = min(best, time.process_time() - t)
        out[name] = len(docs) / best
    return out, sum(len(h.encode("utf-8", "surrogatepass")) for h, _ in docs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    pages = list(iter_reference_pages(Path(args.shared)))
    totals, extra, sample, more, fewer, dropped, dropped_sample = compare(pages, args.sample, args.seed)
    print(f"pages: {len(pages)}")
    print(f"{'profile':<14}{'images':>8}{'text nodes':>12}{'words':>10}")
    for name, t in totals.items():
        print(f"{name:<14}{t['images']:>8}{t['texts']:>12}{t['words']:>10}")
    d, o = totals["default"], totals["obelics-2023"]
    print(f"default / obelics-2023: images x{d['images'] / max(o['images'], 1):.2f}, "
          f"words x{d['words'] / max(o['words'], 1):.2f}; pages with more images {more}, fewer {fewer}")
    n_img = sum(1 for e in extra if e["kind"] == "image")
    print(f"extra items in default: {len(extra)} ({n_img} images, {len(extra) - n_img} text lines)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "extra_content_sample.jsonl", "w", encoding="utf-8") as f:
        for e in sample:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    with open(out / "dropped_images_sample.jsonl", "w", encoding="utf-8") as f:
        for e in dropped_sample:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"obelics-2023 images not kept by default: {len(dropped)}")
    print(f"samples (one item per site): {out / 'extra_content_sample.jsonl'} ({len(sample)} extra items), "
          f"{out / 'dropped_images_sample.jsonl'} ({len(dropped_sample)} dropped images)")
    funnel = content_funnel(pages)
    print("main-content decision (default, extract.main_content off = before / on = after):")
    print(f"  {'':8}{'docs':>6}{'words':>10}{'images':>8}{'paragraphs':>12}   after the default text filters: "
          f"docs, words, images (paragraphs, documents dropped)")
    for name in ("before", "after"):
        r, f = funnel[name], funnel[name]["filtered"]
        print(f"  {name:8}{r['documents']:>6}{r['words']:>10}{r['images']:>8}{r['paragraphs']:>12}   "
              f"{f['documents']}, {f['words']}, {f['images']} ({f['paragraphs_dropped']}, {f['documents_dropped']})")
    print(f"  images kept before but not after: {funnel['images_only_before']}; after but not before: "
          f"{funnel['images_only_after']}")
    with open(out / "content_funnel.json", "w", encoding="utf-8") as f:
        json.dump(funnel, f, indent=1)
    if not args.no_timing:
        rates, nbytes = timing(pages)
        floor = rates["parse floor"]
        print(f"speed, {len(pages)} pages, {nbytes / 1e6:.1f} MB decoded HTML, one process:")
        for name, r in rates.items():
            print(f"  {name:<34}{r:>9.1f} pages/s  {r * nbytes / len(pages) / 1e6:>7.1f} MB/s  "
                  f"floor/this = {floor / r:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
