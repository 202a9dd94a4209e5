"""What the ``default`` profile's paragraph filters drop once the main-content decision has cleaned the input.

On ../shared/data/content-bench (181 article pages with a hand-made article body), the ``default``
extraction with and without the decision (``extract.main_content``) is split into the filters' paragraphs and
judged by the profile's paragraph checks (text checks, language id, perplexity). Per reason it prints the
paragraphs and words dropped and the share of those words that belong to the article body (a paragraph's
word 4-grams found in the truth, as the benchmark scores them): a filter whose drops are mostly article
text costs recall on clean input; one whose drops are mostly not is still doing its quality job. It also
prints the benchmark's F1/P/R of the document text before and after the paragraph filters.

    .venv/bin/python -m bench.content_filters [--split dev|heldout|all]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter, defaultdict

from bench.bench_content import DATA, _shingles, document_text, load_pages, score


def judge(pages, cfg, chain) -> tuple[dict, list[str]]:
    """Per reason ``[paragraphs, words, words in the truth]`` and each page's text after the filters."""
    from filters.text_metrics import get_words
    from obelics.extract import extract_html

    by_reason: dict = defaultdict(lambda: [0, 0, 0])
    filtered = []
    for p in pages:
        doc = extract_html(p.html, p.url, cfg)
        truth = _shingles(p.truth)
        kept = []
        for t in doc.texts:
            if not t:
                continue
            paras = chain._paragraphs(t)
            for para, reason in zip(paras, chain.paragraph_verdicts(paras), strict=True):
                if reason is None:
                    kept.append(para)
                    continue
                sh = _shingles(para)
                row = by_reason[reason]
                row[0] += 1
                words = len(get_words(para))
                row[1] += words
                total = sum(sh.values())
                # the paragraph's words in the body: its share of 4-grams found in the truth
                row[2] += words * (sum((sh & truth).values()) / total) if total else 0
        filtered.append("\n".join(kept))
    return dict(by_reason), filtered


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["dev", "heldout", "all"], default="all")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="profile override for the filters, e.g. text_filters.node.stopword_ratio_min=0.3")
    ap.add_argument("--only-on", action="store_true", help="only the extraction with the decision")
    args = ap.parse_args(argv)
    if not (DATA / "ground-truth.json").exists():
        print(f"content_filters: no benchmark at {DATA}", file=sys.stderr)
        return 2
    from filters.text_filters import text_filter_for
    from obelics.config import load_profile
    from obelics.extract import extract_config

    chain = text_filter_for(load_profile("default", args.set))
    pages = [p for p in load_pages() if args.split == "all" or p.split == args.split]
    if chain.langid is not None:  # the pages whose body the profile's language id keeps (its language)
        n = len(pages)
        pages = [p for p in pages if p.truth and chain.langid.verdict(" ".join(p.truth.split())) is None]
        print(f"{len(pages)} of {n} pages have a body in the profile's language ({chain.langid.cfg.languages})")
    after = extract_config("default")
    truths = [p.truth for p in pages]
    runs = [("main_content on", after)]
    if not args.only_on:
        runs.insert(0, ("main_content off", dataclasses.replace(after, main_content=False)))
    for name, cfg in runs:
        from obelics.extract import extract_html

        raw = [document_text(extract_html(p.html, p.url, cfg).texts) for p in pages]
        by_reason, filtered = judge(pages, cfg, chain)
        s0, s1 = score(truths, raw), score(truths, filtered)
        print(f"== {name}, {len(pages)} pages ({args.split}): F1/P/R {s0['f1']:.3f}/{s0['precision']:.3f}/"
              f"{s0['recall']:.3f} extracted -> {s1['f1']:.3f}/{s1['precision']:.3f}/{s1['recall']:.3f} after the "
              "paragraph filters")
        print(f"   {'reason':28s} {'paragraphs':>10} {'words':>8} {'in body':>8}")
        tot = Counter()
        for reason, (n, w, t) in sorted(by_reason.items(), key=lambda kv: -kv[1][1]):
            tot.update({"n": n, "w": w, "t": t})
            print(f"   {reason:28s} {n:>10} {w:>8} {t / w if w else 0:>8.0%}")
        print(f"   {'all':28s} {tot['n']:>10} {tot['w']:>8} {tot['t'] / tot['w'] if tot['w'] else 0:>8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
