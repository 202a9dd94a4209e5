"""MinHash quality on near-copies of the real shared pages: precision >= 0.99, recall >= 0.95 at J >= 0.8.

Two measures, each against the exact Jaccard similarity of the 5-gram shingle sets:
- pairs: the detector (LSH candidates confirmed as the profile says) against every pair with J >= 0.8;
- removals: the documents the pass removes against those the same greedy rule removes on the true
  near-duplicate graph (so chains A~B~C are judged as the pass is meant to treat them).
"""

import json

import numpy as np

from filters.dedup.config import DedupConfig, MinHashConfig
from filters.dedup.evaluate import all_candidate_pairs, evaluate_pairs, near_copy_benchmark, true_pairs
from filters.dedup.minhash import (
    MinHasher,
    confirm,
    document_shingles,
    greedy_removals,
    jaccard,
    minhash_dedup,
    recency_rank,
)
from filters.dedup.recency import recency_column
from obelics.document import documents_to_table
from tests.conftest import shared_path
from tests.filters.dedup_helpers import make_doc


def _pages():
    path = shared_path("data", "reference", "shared_html.jsonl")
    pages = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = "\n\n".join(t for t in row["texts"] if t)
        if text:
            pages[row["file"]] = text
    return pages


def test_minhash_precision_and_recall_on_near_copies_of_real_pages():
    bench = near_copy_benchmark(_pages(), seed=0)
    cfg = DedupConfig()
    mh = cfg.minhash
    hasher = MinHasher.from_config(mh)
    truth = true_pairs(bench.texts, hasher, mh.threshold)
    rng = np.random.default_rng(0)
    dates = [f"20{rng.integers(20, 24)}-0{rng.integers(1, 10)}-1{rng.integers(0, 10)}" for _ in bench.texts]
    docs = [make_doc(f"https://x/{k}", ["i"], texts=[t], doc_id=f"{k:04d}", date=d)
            for k, (t, d) in enumerate(zip(bench.texts, dates))]
    table = documents_to_table(docs)
    sets, sigs, valid = document_shingles(table, hasher, mh.min_words)
    candidates = all_candidate_pairs(hasher.band_keys(sigs), valid)

    def names(pairs):
        return [(bench.names[i], bench.names[j], round(jaccard(sets[i], sets[j]), 3)) for i, j in sorted(pairs)]

    print(f"\n{len(bench.texts)} documents from {len(bench.texts) // 8} pages, {len(truth)} pairs with J >= {mh.threshold}")
    lsh = evaluate_pairs(candidates, set(truth))
    print(f"LSH candidates alone: recall {lsh.recall:.4f}, {lsh.found} candidates; misses: {names(lsh.misses)}")
    results = {}
    for verify in ("exact", "signature", "none"):
        c = MinHashConfig(**{**mh.__dict__, "verify": verify})
        a = np.array([p[0] for p in sorted(candidates)], np.int64)
        b = np.array([p[1] for p in sorted(candidates)], np.int64)
        a, b = confirm(a, b, c, sets, sigs)
        m = results[verify] = evaluate_pairs(set(zip(a.tolist(), b.tolist())), set(truth))
        print(f"pairs, verify={verify}: precision {m.precision:.4f} recall {m.recall:.4f} "
              f"(found {m.found}, true {m.true})\n  misses: {names(m.misses)}\n  false pairs: {names(m.false_pairs)[:20]}")

    # removals by the pass vs the same greedy rule on the true graph
    r = minhash_dedup(docs, cfg)
    removed = set(r.removed["doc_id"].to_pylist())
    rank = recency_rank(recency_column(table, cfg.recency), table["doc_id"].combine_chunks())
    ta = np.array([p[0] for p in truth], np.int64)
    tb = np.array([p[1] for p in truth], np.int64)
    ideal = {f"{i:04d}" for i in np.flatnonzero(greedy_removals(len(docs), ta, tb, rank) >= 0)}
    tp = len(removed & ideal)
    rem_p = tp / len(removed) if removed else 1.0
    rem_r = tp / len(ideal) if ideal else 1.0
    print(f"removals: precision {rem_p:.4f} recall {rem_r:.4f} (removed {len(removed)}, ideal {len(ideal)}); "
          f"missed {sorted(bench.names[int(i)] for i in ideal - removed)}; "
          f"extra {sorted(bench.names[int(i)] for i in removed - ideal)}")

    assert len(truth) >= 300 and min(truth.values()) >= mh.threshold
    assert lsh.recall >= 0.95
    assert results["exact"].precision >= 0.99 and results["exact"].recall >= 0.95
    assert rem_p >= 0.99 and rem_r >= 0.95
