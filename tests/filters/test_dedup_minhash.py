import numpy as np
import pytest

from filters.dedup.config import DedupConfig, MinHashConfig
from filters.dedup.minhash import MinHasher, bucket_edges, jaccard, minhash_dedup, near_duplicate_pairs, words
from filters.dedup.union_find import components_of_ids, connected_components
from obelics.document import documents_to_table
from tests.filters.dedup_helpers import make_doc

RNG = np.random.default_rng(7)
VOCAB = [f"w{i}" for i in range(3000)]


def _text(n=400):
    return " ".join(RNG.choice(VOCAB, n).tolist())


def _edit(text, frac, rng):
    ws = text.split()
    return " ".join(w if rng.random() > frac else f"new{rng.integers(1e9)}" for w in ws)


def test_shingles_follow_words_and_ngrams():
    h = MinHasher(ngram=3)
    assert words("Hello, World! it's “quoted” — ok") == ["hello", "world", "it", "s", "quoted", "ok"]
    assert len(h.shingles("a b c d e")) == 3
    assert np.array_equal(h.shingles("A  b, c"), h.shingles("a b c"))  # case and punctuation ignored
    assert len(h.shingles("a b")) == 1 and len(h.shingles(" ,; ")) == 0
    flat, off, nw = h.batch_shingles(["a b c d", "", "x y", "p q r"])
    assert list(np.diff(off)) == [2, 0, 1, 1] and list(nw) == [4, 0, 2, 3]
    assert np.array_equal(np.unique(flat[off[3]:off[4]]), h.shingles("p q r"))


def test_signature_estimates_jaccard():
    h = MinHasher(bands=20, rows=8)
    errs = []
    base = _text(600)
    for frac in (0.01, 0.02, 0.04, 0.08):
        for _ in range(10):
            s1, s2 = h.shingles(base), h.shingles(_edit(base, frac, RNG))
            sig = h.signatures([s1, s2])
            errs.append((sig[0] == sig[1]).mean() - jaccard(s1, s2))
    assert abs(np.mean(errs)) < 0.02 and np.std(errs) < 0.05  # binomial std at 160 hashes ~0.035


def test_identical_texts_share_every_band_and_empty_never_links():
    h = MinHasher()
    sig = h.signatures([h.shingles("x " * 3), h.shingles("x " * 3), np.zeros(0, np.uint64)])
    keys = h.band_keys(sig)
    assert (keys[0] == keys[1]).all() and not (keys[0] == keys[2]).any()


def test_bucket_edges_link_each_bucket():
    keys = np.array([5, 7, 5, 5, 9, 7], np.uint64)
    a, b = bucket_edges(keys, np.array([0, 1, 2, 3, 4, 5]))
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 2), (0, 3), (1, 5), (2, 3)]  # star + chain


def test_connected_components_match_a_python_union_find():
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.integers(0, n, 300), rng.integers(0, n, 300)
    labels = connected_components(n, a, b)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for x, y in zip(a, b):
        rx, ry = find(x), find(y)
        parent[max(rx, ry)] = min(rx, ry)
    for i in range(n):
        for j in (a[i % 300], b[i % 300]):
            assert (labels[i] == labels[j]) == (find(i) == find(j))
    assert labels.tolist() == [min(k for k in range(n) if find(k) == find(i)) for i in range(n)]
    assert components_of_ids(["x", "y"], ["y", "z"]) == {"x": "x", "y": "x", "z": "x"}


def test_near_duplicates_removed_keeping_most_recent():
    base, other = _text(), _text()
    rng = np.random.default_rng(1)
    docs = [
        make_doc("https://a.com/1", ["i"], texts=[base], date="2021-01-01", doc_id="old"),
        make_doc("https://b.com/2", ["i"], texts=[_edit(base, 0.01, rng)], date="2023-01-01", doc_id="new"),
        make_doc("https://c.com/3", ["i"], texts=[base + " footer text here"], date="2022-01-01", doc_id="mid"),
        make_doc("https://d.com/4", ["i"], texts=[other], date="2020-01-01", doc_id="other"),
        make_doc("https://e.com/5", ["i"], texts=[_edit(base, 0.3, rng)], date="2020-01-01", doc_id="far"),
    ]
    r = minhash_dedup(docs, DedupConfig())
    assert sorted(r.doc_ids) == ["far", "new", "other"]
    assert r.removed_ids() == {"old": "minhash:near_duplicate", "mid": "minhash:near_duplicate"}


@pytest.mark.parametrize("verify", ["exact", "signature", "none"])
def test_verification_modes(verify):
    base = _text(300)
    rng = np.random.default_rng(3)
    docs = [make_doc(f"https://a.com/{k}", ["i"], texts=[_edit(base, 0.004 * k, rng)], doc_id=str(k)) for k in range(8)]
    a, b = near_duplicate_pairs(documents_to_table(docs), MinHashConfig(verify=verify))
    h = MinHasher()
    sets = [h.shingles(d.texts[0]) for d in docs]
    for i, j in zip(a, b):
        if verify == "exact":
            assert jaccard(sets[i], sets[j]) >= 0.8
    assert len(a) > 0


def test_short_documents_are_never_linked():
    docs = [make_doc(f"https://a.com/{k}", ["i"], texts=["Home"], doc_id=str(k)) for k in range(3)]
    assert len(minhash_dedup(docs, DedupConfig()).doc_ids) == 3


# -- the greedy removal decided a window of ranks at a time (the bounded-memory task's scan) ---------
def _greedy_by_windows(n, a, b, rank, windows):
    """greedy_window over rank windows cut at ``windows``: the removed nodes (by node index)."""
    from filters.dedup.minhash import REMOVED, greedy_window

    ra, rb = rank[a], rank[b]
    hi, lo = np.maximum(ra, rb), np.minimum(ra, rb)
    state = np.zeros(n, np.uint8)
    cuts = [0, *sorted(set(windows) - {0, n}), n]
    for r0, r1 in zip(cuts[:-1], cuts[1:]):
        sel = (hi >= r0) & (hi < r1)
        greedy_window(state, hi[sel], lo[sel], r0, r1)
    assert (state > 0).all()
    return state[rank] == REMOVED


def _random_graph(rng, n, density):
    m = max(1, int(n * density))
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    return a, b


@pytest.mark.parametrize("ratio", [0, 128, 10**9])  # node by node after one round, the default, rounds only
@pytest.mark.parametrize("seed", range(40))
def test_greedy_window_equals_greedy_removals(seed, ratio, monkeypatch):
    """Random graphs, dense and sparse, ranks with a path in rank order (the node-by-node fallback), a star
    on the least recent node, several components, and windows from one rank to all of them."""
    from filters.dedup import minhash
    from filters.dedup.minhash import greedy_removals

    monkeypatch.setattr(minhash, "_SEQUENTIAL_RATIO", ratio)

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    a, b = _random_graph(rng, n, [0.3, 1, 3, 12][seed % 4])
    if seed % 5 == 0:  # a path in rank order: one node decided a round
        path = np.arange(n)
        a, b = np.concatenate([a, path[:-1]]), np.concatenate([b, path[1:]])
    if seed % 7 == 0:  # a star centred on the least recent node
        a, b = np.concatenate([a, np.full(n - 1, n - 1)]), np.concatenate([b, np.arange(n - 1)])
    rank = rng.permutation(n) if seed % 5 else np.arange(n)
    want = greedy_removals(n, a, b, rank) >= 0
    for w in (1, 2, 7, max(1, n // 3), n):
        got = _greedy_by_windows(n, a, b, rank, list(range(0, n, w)))
        assert np.array_equal(got, want), (seed, w)


def test_greedy_window_chain_keeps_the_third():
    """A~B, B~C, A!~C, A most recent: B removed, C kept, in one window and in one window a node."""
    a, b, rank = np.array([0, 1]), np.array([1, 2]), np.array([0, 1, 2])
    for windows in ([0], [0, 1, 2]):
        assert _greedy_by_windows(3, a, b, rank, windows).tolist() == [False, True, False]


def test_normalized_text_equals_lower_and_translate():
    """The regex normalisation equals ``lower().translate(_PUNCT)`` (what the shingles were made from) on random
    texts of ASCII, every _PUNCT character, letters whose lowercase differs or grows (İ, Σ, Ω), CJK, emoji
    and lone surrogates; ASCII texts are returned lowered."""
    from filters.dedup.minhash import _PUNCT, _normalized

    rng = np.random.default_rng(0)
    alphabet = list("aZ 9_,.!?-'\"\n\t") + [chr(c) for c in _PUNCT] + list("İΣΩÉßǅ中文。，😀") + ["\ud800", "\udfff"]
    for n in [0, 1, 2, 5, 50, 400] * 40:
        t = "".join(rng.choice(alphabet, n))
        assert _normalized(t) == t.lower().translate(_PUNCT)
    ascii_text = "Hello, World! " * 10
    assert _normalized(ascii_text) == ascii_text.lower()


def test_each_shingle_is_its_window_of_words_hashed_alone():
    """A text's k-th shingle is the one shingle of the text made of its words k..k+ngram-1 (the windows are
    hashed from shifted slices of the word hashes; a short text's one window from its own words)."""
    h = MinHasher(ngram=5)
    ws = [f"w{i}" for i in range(9)]
    flat, off, _ = h.batch_shingles([" ".join(ws), "a b", " ".join(ws[:5]), "x y z"])
    assert list(np.diff(off)) == [5, 1, 1, 1]
    for k in range(5):
        assert flat[k] == h.batch_shingles([" ".join(ws[k:k + 5])])[0][0]
    assert flat[5] == h.batch_shingles(["a b"])[0][0] and flat[7] == h.batch_shingles(["x y z"])[0][0]
    assert flat[6] == flat[0] and len(set(flat[:5].tolist())) == 5


def test_text_signatures_hash_each_distinct_text_once(monkeypatch):
    h = MinHasher()
    texts = [_text(50), _text(30), "", _text(50)]
    texts[3] = texts[0]
    seen = []
    shingle = MinHasher.batch_shingles
    monkeypatch.setattr(MinHasher, "batch_shingles", lambda self, tx: seen.append(list(tx)) or shingle(self, tx))
    sigs, nwords = h.text_signatures(texts)
    assert seen == [texts[:3]]  # the duplicate of the first text is not shingled again
    alone = [h.text_signatures([t]) for t in texts]
    assert np.array_equal(sigs, np.concatenate([a[0] for a in alone]))
    assert nwords.tolist() == [a[1][0] for a in alone] == [50, 30, 0, 50]
