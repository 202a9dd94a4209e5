"""MinHash LSH near-duplicate detection on document text, vectorised with NumPy.

Pipeline for a set of documents: text -> lower-cased ``\\w+`` words -> word n-gram shingles (each a
64-bit hash: every word is hashed once with xxh3, n consecutive word hashes are combined with
NumPy) -> signature (for each of ``bands * rows`` hash functions ``h_i(x) = a_i * x + b_i mod 2**64``,
the minimum over the shingles, top 32 bits kept) -> one 64-bit key per band -> candidate pairs
(documents sharing a band key) -> confirmed pairs (exact Jaccard of the shingle sets, or the
signature estimate) -> removal: from the most recent document down, a kept document removes its
confirmed near-duplicates (see :func:`greedy_removals`).

Why our own code and not datasketch: datasketch's ``MinHash.update`` hashes shingle by shingle in
Python and computes ``(a*x+b) mod p`` one document at a time; here the shingle hashes of a whole batch
of documents are concatenated and every hash function is applied in one (chunked) matrix operation,
with the per-document minimum taken by ``np.minimum.reduceat``. Multiply-add modulo 2**64 (keeping the
high bits) is a universal family for hashed inputs and needs no modulo by a prime.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filters.dedup.common import DedupResult, as_table, removal_result, removed_table
from filters.dedup.config import DedupConfig, MinHashConfig
from filters.dedup.recency import recency_column

REASON = "minhash:near_duplicate"
_WORD_RE = re.compile(r"\w+")
_U64 = np.uint64
_CHUNK = 1 << 13  # shingles a signature chunk: 160 x 8k x 8 bytes = 10 MB (1 << 15, 42 MB: +14% CPU)
_GROUP_BYTES = 1 << 20  # text bytes shingled at once (the prefix-sum arrays stay ~10 MB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a uint64 array."""
    h ^= h >> _U64(30)
    h *= _U64(0xBF58476D1CE4E5B9)
    h ^= h >> _U64(27)
    h *= _U64(0x94D049BB133111EB)
    h ^= h >> _U64(31)
    return h


def document_text(texts) -> str:
    """The text of a document: its non-empty text nodes joined by blank lines."""
    return "\n\n".join(t for t in texts or () if t)


def words(text: str) -> list[str]:
    """The words :class:`MinHasher` shingles (for inspection; hashing works on bytes, see below)."""
    return [w for w in _WORD_RE.findall(_normalized(text))]


# Non-ASCII punctuation that separates words like ASCII punctuation does.
_PUNCT = {ord(c): " " for c in "\u00a0\u00ab\u00bb\u00b7\u00bf\u00a1\u00b4\u2010\u2011\u2012\u2013\u2014\u2015"
          "\u2018\u2019\u201a\u201c\u201d\u201e\u2022\u2026\u2032\u2033\u3000\u3001\u3002\uff0c\uff0e\uff1a"
          "\uff1b\uff01\uff1f\u300c\u300d\u300a\u300b\uff08\uff09"}
_PUNCT_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in _PUNCT) + "]")


def _normalized(text: str) -> str:
    """``text.lower().translate(_PUNCT)``: a regex that only touches _PUNCT's characters (``str.translate``
    looks up every character: ~10x the CPU on the bench corpus's texts), none in an ASCII text."""
    t = text.lower()
    return t if t.isascii() else _PUNCT_RE.sub(" ", t)

# Word bytes: ASCII letters, digits and "_" (as in \w), and every byte of a non-ASCII character.
_WORD_BYTE = np.zeros(256, bool)
_WORD_BYTE[[ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = True
_WORD_BYTE[128:] = True


@dataclass
class MinHasher:
    """Shingles, signatures and band keys for one (ngram, bands, rows, seed) setting.

    Tokenising and shingling are vectorised over a whole batch: the lower-cased texts are encoded to
    UTF-8 and concatenated; words are runs of word bytes (ASCII ``\\w`` or non-ASCII, common Unicode
    punctuation being mapped to spaces first); each word's hash is a polynomial hash mod 2**64 read
    off prefix sums, so no Python runs per word.
    """

    ngram: int = 5
    bands: int = 20
    rows: int = 8
    seed: int = 1

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        k = self.bands * self.rows
        self.num_perm = k

        def odd(n):
            return rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True) | _U64(1)

        self.a = odd(k)[:, None]  # (perms, 1): signatures are computed as (perms, shingles)
        self.b = rng.integers(0, 2**64 - 1, size=k, dtype=np.uint64, endpoint=True)[:, None]
        self.pos = odd(self.ngram)
        self.band_mul = odd(self.rows)
        self.band_salt = rng.integers(0, 2**64 - 1, size=self.bands, dtype=np.uint64, endpoint=True)
        self.byte_val = rng.integers(1, 2**64 - 1, size=256, dtype=np.uint64, endpoint=True)
        self.base = odd(1)[0]
        inv = self.base  # inverse of base mod 2**64 by Newton's iteration
        with np.errstate(over="ignore"):
            for _ in range(6):
                inv = inv * (_U64(2) - self.base * inv)
        self.base_inv = inv
        self._pow = np.ones(1, np.uint64)
        self._ipow = np.ones(1, np.uint64)
        self._buf = np.empty(0, np.uint64)

    @classmethod
    def from_config(cls, cfg: MinHashConfig) -> MinHasher:
        return _hasher(cfg.ngram, cfg.bands, cfg.rows, cfg.seed)

    def _powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._pow) < n:
            m = max(n, 2 * len(self._pow))
            with np.errstate(over="ignore"):
                self._pow = np.cumprod(np.full(m, self.base, np.uint64)) * self.base_inv  # base**k
                self._ipow = np.cumprod(np.full(m, self.base_inv, np.uint64)) * self.base
        return self._pow[:n], self._ipow[:n]

    # -- shingles -------------------------------------------------------------------------------
    def batch_shingles(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shingle hashes of many texts: (flat uint64 hashes, offsets (len+1), words per text).

        A text with fewer than ``ngram`` words has one shingle (all its words); with none, none.
        Hashes are not de-duplicated (minimum-based signatures do not need it).
        """
        encoded = [_normalized(t).encode("utf-8", "surrogatepass") for t in texts]
        parts, group, size = [], [], 0
        for e in encoded:  # groups of about 1 MB keep the prefix-sum arrays small
            if group and size + len(e) > _GROUP_BYTES:
                parts.append(self._shingle_group(group))
                group, size = [], 0
            group.append(e)
            size += len(e) + 1
        if group or not parts:
            parts.append(self._shingle_group(group))
        if len(parts) == 1:
            return parts[0]
        flat = np.concatenate([p[0] for p in parts])
        lens = np.concatenate([np.diff(p[1]) for p in parts])
        return flat, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), np.concatenate([p[2] for p in parts])

    def _shingle_group(self, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = len(encoded)
        c = np.frombuffer(b" ".join(encoded) + b" ", np.uint8)
        # text boundaries: each text's bytes start after the previous separator
        lens = np.fromiter((len(e) for e in encoded), np.int64, d)
        text_start = np.concatenate([[0], np.cumsum(lens + 1)[:-1]]) if d else np.zeros(0, np.int64)
        isw = _WORD_BYTE[c]
        prev = np.concatenate([[False], isw[:-1]])
        starts = np.flatnonzero(isw & ~prev)
        ends = np.flatnonzero(~isw & prev)  # exclusive; the trailing space guarantees one per start
        n_bytes = len(c)
        pw, ipw = self._powers(n_bytes + 1)
        with np.errstate(over="ignore"):
            prefix = np.zeros(n_bytes + 1, np.uint64)
            np.cumsum(self.byte_val[c] * pw[:n_bytes], out=prefix[1:])
            wh = (prefix[ends] - prefix[starts]) * ipw[starts]
            wh = _mix(wh + (ends - starts).astype(np.uint64))
        # words per text
        text_of_word = np.searchsorted(text_start, starts, side="right") - 1
        nwords = np.bincount(text_of_word, minlength=d) if d else np.zeros(0, np.int64)
        word_off = np.concatenate([[0], np.cumsum(nwords)])
        n = self.ngram
        # shingle windows starting at each word whose window stays inside its text
        w_count = len(wh)
        first_word_of_text = word_off[:-1][text_of_word] if w_count else np.zeros(0, np.int64)
        last_word_excl = word_off[1:][text_of_word] if w_count else np.zeros(0, np.int64)
        idx = np.arange(w_count)
        full = idx + n <= last_word_excl
        short_text = (nwords < n)[text_of_word] if w_count else np.zeros(0, bool)
        head = short_text & (idx == first_word_of_text)  # texts with < n words: one window at their start
        sel = full | head
        with np.errstate(over="ignore"):
            # every n-word window's hash from n shifted slices (no gather), then the short texts' heads,
            # each summing its own words only (the same sum as a window padded with zero words)
            padded = np.concatenate([wh, np.zeros(n, np.uint64)])
            h_all = padded[:w_count] * self.pos[0]
            for j in range(1, n):
                h_all += padded[j:j + w_count] * self.pos[j]
            heads = np.flatnonzero(head)
            if len(heads):
                hh = np.zeros(len(heads), np.uint64)
                head_len = (last_word_excl - idx)[heads]
                for j in range(n):
                    hh += np.where(j < head_len, padded[heads + j], _U64(0)) * self.pos[j]
                h_all[heads] = hh
            h = _mix(h_all[sel])
        per_text = np.bincount(text_of_word[sel], minlength=d) if d else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
        return h, offsets, nwords

    def shingles(self, text: str) -> np.ndarray:
        """Sorted unique shingle hashes of one text."""
        h, _, _ = self.batch_shingles([text])
        return np.unique(h)

    # -- signatures -----------------------------------------------------------------------------
    def signatures_flat(self, flat: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(documents, bands*rows) uint32 signatures of shingle lists given as flat array + offsets;
        a document without shingles gets all 0xFFFFFFFF."""
        d = len(offsets) - 1
        out = np.full((d, self.num_perm), 0xFFFFFFFF, np.uint32)
        lens = np.diff(offsets)
        if len(self._buf) < self.num_perm * _CHUNK:
            self._buf = np.empty(self.num_perm * _CHUNK, np.uint64)
        i = 0
        while i < d:  # chunks of about _CHUNK shingles; (perms, shingles) layout, reduced along rows
            j = int(np.searchsorted(offsets, offsets[i] + _CHUNK, side="right")) - 1
            j = max(j, i + 1)
            j = min(j, d)
            idx = np.arange(i, j)[lens[i:j] > 0]
            if len(idx):
                lo, hi = offsets[i], offsets[j]
                x = flat[lo:hi]
                if hi - lo <= _CHUNK:
                    buf = self._buf[: self.num_perm * (hi - lo)].reshape(self.num_perm, hi - lo)
                    with np.errstate(over="ignore"):
                        np.multiply(self.a, x[None, :], out=buf)
                else:
                    with np.errstate(over="ignore"):
                        buf = self.a * x[None, :]
                with np.errstate(over="ignore"):
                    buf += self.b
                mins = np.minimum.reduceat(buf, offsets[idx] - lo, axis=1)
                out[idx] = (mins.T >> _U64(32)).astype(np.uint32)
            i = j
        return out

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """Signatures of a list of shingle arrays."""
        lens = np.fromiter((len(s) for s in shingle_sets), np.int64, len(shingle_sets))
        flat = np.concatenate(list(shingle_sets)) if len(shingle_sets) else np.zeros(0, np.uint64)
        return self.signatures_flat(flat.astype(np.uint64), np.concatenate([[0], np.cumsum(lens)]))

    def text_signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Signatures of texts, and their word counts. Equal texts (exact duplicates: 7% of the bench corpus's
        texts reaching MinHash) are shingled and signed once."""
        index: dict[str, int] = {}
        inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, len(texts))
        if len(index) == len(texts):
            flat, offsets, nwords = self.batch_shingles(texts)
            return self.signatures_flat(flat, offsets), nwords
        flat, offsets, nwords = self.batch_shingles(list(index))
        return self.signatures_flat(flat, offsets)[inverse], nwords[inverse]

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """(documents, bands) uint64: one hash per band of ``rows`` signature values, salted by band."""
        s = sigs[:, : self.bands * self.rows].reshape(len(sigs), self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = np.zeros((len(sigs), self.bands), np.uint64)
            for r in range(self.rows):
                h = (h + s[:, :, r]) * self.band_mul[r]
            h ^= self.band_salt
            return _mix(h)


@functools.lru_cache(maxsize=8)
def _hasher(ngram: int, bands: int, rows: int, seed: int) -> MinHasher:
    """One hasher per setting and process (it caches its power tables and buffer)."""
    return MinHasher(ngram, bands, rows, seed)


# -- candidate pairs and confirmation --------------------------------------------------------------
def bucket_edges(keys: np.ndarray, members: np.ndarray, priority: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (bucket head, other member) and (member, next member) for every bucket of equal ``keys``.

    Pairs are unique, as (min, max).

    ``keys`` and ``members`` are flat, one entry per (document, band). The head of a bucket is its
    member with the lowest ``priority`` (the most recent document), else the first; linking every
    member to the head of each of its buckets gives :func:`greedy_removals` the edges it needs
    without the quadratic all-pairs set.
    """
    if len(keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if priority is None:
        order = np.argsort(keys, kind="stable")
    else:
        order = np.lexsort((priority, keys))
    k, m = keys[order], members[order]
    new_run = np.ones(len(k), bool)
    new_run[1:] = k[1:] != k[:-1]
    run_id = np.cumsum(new_run) - 1
    first = m[new_run][run_id]
    sel = ~new_run & (first != m)
    # star edges to the head, plus chain edges between neighbours in priority order (a head that is
    # not a near-duplicate of its bucket would otherwise leave the other members unlinked)
    prev = np.concatenate([m[:1], m[:-1]])
    chain = ~new_run & (prev != m) & (prev != first)
    x = np.concatenate([first[sel], prev[chain]])
    y = np.concatenate([m[sel], m[chain]])
    a, b = np.minimum(x, y), np.maximum(x, y)
    if len(a) == 0:
        return a, b
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def lsh_candidates(band_keys: np.ndarray, valid: np.ndarray | None = None, rank: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (row indices) of documents sharing a band key, each linked to its buckets' heads."""
    d, nb = band_keys.shape
    rows = np.repeat(np.arange(d), nb)
    flat = band_keys.reshape(-1)
    prio = None if rank is None else np.repeat(rank, nb)
    if valid is not None:
        keep = np.repeat(valid, nb)
        rows, flat = rows[keep], flat[keep]
        prio = None if prio is None else prio[keep]
    return bucket_edges(flat, rows, prio)


def jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if len(x) == 0 and len(y) == 0:
        return 1.0
    inter = len(np.intersect1d(x, y, assume_unique=True))
    return inter / (len(x) + len(y) - inter)


def confirm(a: np.ndarray, b: np.ndarray, cfg: MinHashConfig, shingle_sets=None, sigs=None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs that pass ``cfg.verify`` at ``cfg.threshold``."""
    if len(a) == 0 or cfg.verify == "none":
        return a, b
    if cfg.verify == "signature":
        est = (sigs[a] == sigs[b]).mean(axis=1)
        ok = est >= cfg.threshold
    else:
        ok = np.fromiter((jaccard(shingle_sets[i], shingle_sets[j]) >= cfg.threshold for i, j in zip(a, b)),
                         bool, len(a))
    return a[ok], b[ok]


def recency_key(recency: pa.Array, doc_ids: pa.Array) -> pa.Array:
    """The string :func:`recency_rank` sorts by (descending): recency, NUL, doc_id."""
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(pc.fill_null(recency.cast(pa.string()), ""),
                                       pc.fill_null(doc_ids.cast(pa.string()), ""), "\x00")


def recency_rank(recency: pa.Array, doc_ids: pa.Array) -> np.ndarray:
    """Rank of each row, 0 = most recent (ties broken by the larger doc_id, then by row order)."""
    import pyarrow.compute as pc

    key = recency_key(recency, doc_ids)
    order = pc.sort_indices(pa.table({"k": key}), sort_keys=[("k", "descending")]).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def greedy_removals(num_nodes: int, a: np.ndarray, b: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each node, the node it is removed in favour of, or -1 when kept.

    Nodes are visited from the most recent (lowest ``rank``); a node not yet removed is kept and
    removes its confirmed near-duplicates that are not kept. So every removed document is a confirmed
    near-duplicate of a kept, more recent one, and chains (A~B, B~C, A!~C) do not remove C because of A
    (connected components would). Python runs once per node with a near-duplicate, not per document.
    """
    by = np.full(num_nodes, -1, np.int64)
    if len(a) == 0:
        return by
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    nodes = np.unique(src)
    starts = np.searchsorted(src, nodes)
    ends = np.searchsorted(src, nodes, side="right")
    kept = np.zeros(num_nodes, bool)
    for k in np.argsort(rank[nodes], kind="stable"):
        n = nodes[k]
        if by[n] >= 0:
            continue
        kept[n] = True
        nb = dst[starts[k]:ends[k]]
        nb = nb[(by[nb] < 0) & ~kept[nb]]
        by[nb] = n
    return by


UNDECIDED, KEPT, REMOVED = 0, 1, 2
# the rounds go on while the work they did (edges and nodes looked at) is under this many times the nodes
# left; then the rest is decided node by node (~400 times a round's cost a node or edge: a path in rank
# order, one node a round, spends ~1/3 more than the node-by-node loop alone)
_SEQUENTIAL_RATIO = 128


def greedy_window(state: np.ndarray, hi: np.ndarray, lo: np.ndarray, r0: int, r1: int) -> None:
    """Decide the nodes of ranks ``r0 .. r1 - 1`` as :func:`greedy_removals` does, in place in ``state``
    (uint8 by rank: UNDECIDED, KEPT, REMOVED; every rank below ``r0`` decided), from all the edges
    ``(hi, lo)`` (ranks, ``lo < hi``) whose ``hi`` is in the window.

    The greedy keeps a node iff none of its more recent neighbours is kept (the first maximal independent
    set in rank order), so a window needs only the decided states below it and its own edges. Decided in
    vectorised rounds: a node with a kept lower neighbour is removed, one whose lower neighbours are all
    removed is kept (the lowest undecided node always is, so every round decides one at least). A round
    after which the rounds have cost more than the nodes left would node by node (a path in rank order
    takes one round a node) hands the rest to a loop over the nodes in rank order.
    """
    sel = (hi >= r0) & (hi < r1) & (lo < hi)
    if not sel.all():
        hi, lo = hi[sel], lo[sel]
    del sel
    und = np.arange(r0, r1)
    und = und[state[und] == UNDECIDED]
    spent = 0
    while len(und):
        spent += len(hi) + len(und)
        s = state[lo]
        state[hi[s == KEPT]] = REMOVED
        waiting = np.zeros(r1 - r0, bool)
        waiting[hi[state[lo] == UNDECIDED] - r0] = True
        free = und[(state[und] == UNDECIDED) & ~waiting[und - r0]]
        state[free] = KEPT
        und = und[state[und] == UNDECIDED]
        keep = state[hi] == UNDECIDED
        hi, lo = hi[keep], lo[keep]
        if len(und) and spent > _SEQUENTIAL_RATIO * len(und):
            order = np.argsort(hi, kind="stable")
            hi, lo = hi[order], lo[order]
            starts = np.searchsorted(hi, und)
            ends = np.searchsorted(hi, und, side="right")
            for r, a, b in zip(und.tolist(), starts.tolist(), ends.tolist()):
                state[r] = REMOVED if (state[lo[a:b]] == KEPT).any() else KEPT
            return


# -- the pass over documents in memory ------------------------------------------------------------
def document_shingles(table: pa.Table, hasher: MinHasher, min_words: int = 0,
                       ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per row: sorted unique shingle set, signature, and whether it has at least ``min_words`` words."""
    texts = [document_text(t) for t in table["texts"].to_pylist()]
    flat, offsets, nwords = hasher.batch_shingles(texts)
    sigs = hasher.signatures_flat(flat, offsets)
    sets = [np.unique(flat[offsets[i]:offsets[i + 1]]) for i in range(len(texts))]
    return sets, sigs, nwords >= max(min_words, 1)


def near_duplicate_pairs(table: pa.Table, cfg: MinHashConfig | None = None, rank: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Confirmed near-duplicate pairs (row indices, a < b) of ``table``; ``rank`` picks bucket heads."""
    cfg = cfg or MinHashConfig()
    hasher = MinHasher.from_config(cfg)
    sets, sigs, valid = document_shingles(table, hasher, cfg.min_words)
    a, b = lsh_candidates(hasher.band_keys(sigs), valid, rank)
    return confirm(a, b, cfg, sets, sigs)


def minhash_dedup(docs, cfg: DedupConfig | None = None) -> DedupResult:
    """Remove near-duplicate documents, keeping the most recent of each cluster."""
    cfg = cfg or DedupConfig()
    table = as_table(docs)
    rank = recency_rank(recency_column(table, cfg.recency), table["doc_id"].combine_chunks())
    a, b = near_duplicate_pairs(table, cfg.minhash, rank)
    keep = greedy_removals(table.num_rows, a, b, rank) < 0
    removed = removed_table(table["doc_id"].filter(pa.array(~keep)).to_pylist(), REASON)
    return removal_result("dedup.minhash", table, removed)
