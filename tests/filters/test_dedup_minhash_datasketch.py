"""Our vectorised MinHash LSH against datasketch, the reference implementation (filters/dedup/minhash.py
says why the pipeline does not call it: it hashes one shingle and one document at a time in Python).

Both are fed the same shingles (our 64-bit word n-gram hashes), so they must agree on what they estimate:
the Jaccard similarity of two documents, and which pairs are near-duplicates at the 0.8 threshold (pairs
far from the threshold; near it both are probabilistic)."""

import numpy as np
from datasketch import MinHash, MinHashLSH

from filters.dedup.config import MinHashConfig
from filters.dedup.minhash import MinHasher, jaccard, near_duplicate_pairs
from obelics.document import documents_to_table
from tests.filters.dedup_helpers import make_doc

NUM_PERM = 160  # our 20 bands x 8 rows


def _datasketch(shingles: np.ndarray) -> MinHash:
    m = MinHash(num_perm=NUM_PERM, seed=1)
    m.update_batch([int(x).to_bytes(8, "little") for x in shingles])
    return m


def _corpus(rng):
    vocab = [f"w{i}" for i in range(5000)]
    texts = []
    for _ in range(6):
        base = rng.choice(vocab, 300).tolist()
        texts.append(" ".join(base))
        for frac in (0.005, 0.02, 0.3, 0.6):  # Jaccard of 5-grams about 0.95, 0.82, 0.1, 0.0
            texts.append(" ".join(w if rng.random() > frac else f"x{rng.integers(1e9)}" for w in base))
    return texts


def test_jaccard_estimates_agree_with_datasketch():
    rng = np.random.default_rng(3)
    texts = _corpus(rng)
    h = MinHasher.from_config(MinHashConfig())
    sets = [h.shingles(t) for t in texts]
    ours = h.signatures(sets)
    refs = [_datasketch(s) for s in sets]
    diffs_ours, diffs_ref = [], []
    for i in range(0, len(texts), 5):
        for j in range(i + 1, i + 5):
            exact = jaccard(sets[i], sets[j])
            diffs_ours.append((ours[i] == ours[j]).mean() - exact)
            diffs_ref.append(refs[i].jaccard(refs[j]) - exact)
    # both unbiased, both with the binomial spread of 160 hashes (std ~0.035 at J=0.5)
    assert abs(np.mean(diffs_ours)) < 0.03 and abs(np.mean(diffs_ref)) < 0.03
    assert np.std(diffs_ours) < 0.06 and np.std(diffs_ref) < 0.06
    assert abs(np.mean(np.abs(diffs_ours)) - np.mean(np.abs(diffs_ref))) < 0.03


def test_near_duplicate_pairs_agree_with_datasketch_lsh_away_from_the_threshold():
    rng = np.random.default_rng(5)
    texts = _corpus(rng)
    docs = [make_doc(f"https://a.com/{k}", [], texts=[t], doc_id=str(k)) for k, t in enumerate(texts)]
    a, b = near_duplicate_pairs(documents_to_table(docs), MinHashConfig())
    ours = {(int(x), int(y)) for x, y in zip(a, b)}

    h = MinHasher.from_config(MinHashConfig())
    sets = [h.shingles(t) for t in texts]
    lsh = MinHashLSH(threshold=0.8, num_perm=NUM_PERM)
    sketches = [_datasketch(s) for s in sets]
    for k, m in enumerate(sketches):
        lsh.insert(str(k), m)
    ref = set()
    for k, m in enumerate(sketches):
        for other in lsh.query(m):
            j = int(other)
            if j != k and jaccard(sets[k], sets[j]) >= 0.8:  # confirmed exactly, as verify="exact" does
                ref.add((min(k, j), max(k, j)))

    clear = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
             if not 0.7 <= jaccard(sets[i], sets[j]) <= 0.9]
    assert {p for p in ours if p in clear} == {p for p in ref if p in clear}
    assert any(jaccard(sets[i], sets[j]) > 0.9 for i, j in ours)  # the corpus does hold near-duplicates
