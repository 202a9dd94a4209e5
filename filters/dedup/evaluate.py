"""Measuring near-duplicate detection: a benchmark of edited copies of real pages, and pair metrics.

``near_copy_benchmark`` takes real page texts and adds, per page, copies with a few percent of words
edited (replaced, deleted or inserted), with paragraphs reordered, with boilerplate added, and a
combination; the other pages are the unrelated documents. ``true_pairs`` computes the exact Jaccard
similarity of every pair sharing a shingle; ``evaluate_pairs`` compares found pairs with the truth.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from filters.dedup.minhash import MinHasher, jaccard

BOILERPLATE = [
    "Accept cookies We use cookies to improve your experience on our site and to show you relevant advertising",
    "Subscribe to our newsletter and get the latest stories delivered to your inbox every morning for free",
    "Share this article on Facebook Twitter LinkedIn or by email Follow us for more updates",
    "Copyright all rights reserved Terms of use Privacy policy Contact us About us Careers Advertise with us",
]


def _edit_words(text: str, frac: float, rng: np.random.Generator, vocab: list[str]) -> str:
    paragraphs = []
    for para in text.split("\n\n"):
        out = []
        for w in para.split(" "):
            r = rng.random()
            if r < frac / 3:  # replace
                out.append(vocab[rng.integers(len(vocab))])
            elif r < 2 * frac / 3:  # delete
                continue
            elif r < frac:  # insert
                out.extend([w, vocab[rng.integers(len(vocab))]])
            else:
                out.append(w)
        paragraphs.append(" ".join(out))
    return "\n\n".join(paragraphs)


def _reorder(text: str, rng: np.random.Generator) -> str:
    paras = text.split("\n\n")
    if len(paras) < 2:
        return text
    order = rng.permutation(len(paras))
    return "\n\n".join(paras[i] for i in order)


def _boilerplate(text: str, rng: np.random.Generator) -> str:
    k = rng.integers(1, len(BOILERPLATE) + 1)
    chosen = [BOILERPLATE[i] for i in rng.permutation(len(BOILERPLATE))[:k]]
    return "\n\n".join([chosen[0], text, *chosen[1:]])


VARIANTS = {
    "edit1%": lambda t, r, v: _edit_words(t, 0.01, r, v),
    "edit2%": lambda t, r, v: _edit_words(t, 0.02, r, v),
    "edit3%": lambda t, r, v: _edit_words(t, 0.03, r, v),
    "edit5%": lambda t, r, v: _edit_words(t, 0.05, r, v),
    "reordered": lambda t, r, v: _reorder(t, r),
    "boilerplate": lambda t, r, v: _boilerplate(t, r),
    "reordered+boilerplate+edit1%": lambda t, r, v: _boilerplate(_reorder(_edit_words(t, 0.01, r, v), r), r),
}


@dataclass
class Benchmark:
    names: list[str]  # "<page>#<variant>"
    texts: list[str]


def near_copy_benchmark(pages: dict[str, str], seed: int = 0, min_words: int = 50) -> Benchmark:
    """Each page (name -> text) with at least ``min_words`` words, plus its variants."""
    rng = np.random.default_rng(seed)
    vocab = sorted({w for t in pages.values() for w in t.split()})[:50000] or ["x"]
    names, texts = [], []
    for name, text in sorted(pages.items()):
        if len(text.split()) < min_words:
            continue
        names.append(f"{name}#original")
        texts.append(text)
        for vname, make in VARIANTS.items():
            names.append(f"{name}#{vname}")
            texts.append(make(text, rng, vocab))
    return Benchmark(names, texts)


def true_pairs(texts: list[str], hasher: MinHasher, threshold: float = 0.8) -> dict[tuple[int, int], float]:
    """{(i, j): Jaccard} for every pair i < j with exact Jaccard >= ``threshold`` (shingles as MinHash)."""
    sets = [hasher.shingles(t) for t in texts]
    index = defaultdict(list)
    for i, s in enumerate(sets):
        for h in s.tolist():
            index[h].append(i)
    candidates = set()
    for docs in index.values():
        if 1 < len(docs) < 1000:
            candidates.update((a, b) for k, a in enumerate(docs) for b in docs[k + 1:])
    out = {}
    for a, b in candidates:
        j = jaccard(sets[a], sets[b])
        if j >= threshold:
            out[(a, b)] = j
    return out


def cluster_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Every pair i < j in the same component."""
    groups = defaultdict(list)
    for i, lab in enumerate(labels.tolist()):
        groups[lab].append(i)
    return {(a, b) for g in groups.values() if len(g) > 1 for k, a in enumerate(g) for b in g[k + 1:]}


@dataclass
class PairMetrics:
    precision: float
    recall: float
    found: int
    true: int
    misses: list[tuple[int, int]] = field(default_factory=list)
    false_pairs: list[tuple[int, int]] = field(default_factory=list)


def evaluate_pairs(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> PairMetrics:
    tp = len(found & truth)
    return PairMetrics(
        precision=tp / len(found) if found else 1.0,
        recall=tp / len(truth) if truth else 1.0,
        found=len(found),
        true=len(truth),
        misses=sorted(truth - found),
        false_pairs=sorted(found - truth),
    )


def all_candidate_pairs(band_keys: np.ndarray, valid: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Every pair i < j sharing at least one band key (the full LSH candidate set, for evaluation)."""
    d, nb = band_keys.shape
    out = set()
    ok = np.ones(d, bool) if valid is None else valid
    for band in range(nb):
        groups = defaultdict(list)
        for i in np.flatnonzero(ok):
            groups[int(band_keys[i, band])].append(int(i))
        for g in groups.values():
            out.update((a, b) for k, a in enumerate(g) for b in g[k + 1:])
    return out
