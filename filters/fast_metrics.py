"""Compiled (Numba) text-filter metrics: word split, word and character repetition, special characters,
punctuation tokens, vocabulary counts, and the perplexity normalisation.

The filter chain spent most of its time in per-character and per-word metrics of
:mod:`filters.text_metrics` (docs/reference.md §5.2), which no library computes: CPython costs ~100 ns a
character for the n-gram Counter, ~30 ns for the ``[\\w']+`` regex, ~150 ns a word for the split and
strip, plus microseconds of call overhead per paragraph and per metric. Here each is one compiled pass
over the code points of all paragraphs of a document at once, giving the same values:

- words (:func:`words_many`): pieces between " ", "\\n", "\\t", special characters stripped from both
  ends, as ``get_words``; equal words get equal ids, and vocabulary membership is looked up once per
  distinct word (hash, then the code points compared in full);
- character and word repetition: n-grams counted in an open-addressing table keyed by a rolling hash;
  two n-grams only share a slot after their code points (word ids) compare equal, so the counts are
  exact (no hash-collision caveat);
- special characters: code points of the single characters of SPECIAL_CHARACTERS;
- punctuation tokens: ``[\\w']+|[,;:?!.]`` tokens are the maximal runs of ``[\\w']`` characters plus the
  punctuation characters (none of which is in ``[\\w']``); which code points ``[\\w']``, ``\\d`` and ``\\s``
  match is decided by Python's own ``re`` once, when the tables are built;
- :func:`normalize_many`: ``filters.perplexity.normalize`` as one per-code-point mapping.

Numba is optional: :func:`available` is false without it, and callers then use the pure-Python
functions (tests/filters/test_fast_metrics.py checks both agree on every shared paragraph and
document, and that the chain decides the same). Kernels compile on first use (a few seconds) and are
cached on disk by Numba.
"""

from __future__ import annotations

import re
from itertools import accumulate, chain, count

import numpy as np

from filters.normalize import NON_PRINTING_CHARACTERS_RE, UNICODE_PUNCTUATION
from filters.text_metrics import _STRIP_CHARS, WHITESPACE_CHARS
from filters.wordlists import PUNCTUATION

try:  # pragma: no cover - exercised when numba is installed (a dependency; the fallback keeps it optional)
    import numba
except ImportError:  # pragma: no cover
    numba = None

SPECIAL, WORD, PUNCT = 1, 2, 4
_TABLE: list[np.ndarray] = []


def available() -> bool:
    """Whether the compiled kernels can run (Numba is installed)."""
    return numba is not None


def class_table() -> np.ndarray:
    """uint8 per code point: bit 1 special character, bit 2 ``[\\w']``, bit 4 one of ``,;:?!.``."""
    if not _TABLE:
        every = "".join(map(chr, range(0x110000)))
        marked = re.sub(r"[\w']", "'", every).encode("utf-32-le", "surrogatepass")
        table = np.where(np.frombuffer(marked, dtype=np.uint32) == ord("'"), WORD, 0).astype(np.uint8)
        table[[ord(c) for c in _STRIP_CHARS]] |= SPECIAL
        table[[ord(c) for c in PUNCTUATION]] |= PUNCT
        _TABLE.append(table)
    return _TABLE[0]


def code_points(text: str) -> np.ndarray:
    """The code points of ``text`` (lone surrogates kept as themselves)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _jit(fn):
    """``fn`` compiled by Numba on its first call (and cached on disk), or ``fn`` itself without Numba."""
    return numba.njit(cache=True, nogil=True)(fn) if numba is not None else fn


def _ngram_tables(starts, ends, n, base):  # pragma: no cover - compiled
    """``base**(n-1)`` (mod 2**64), an empty open-addressing table big enough for the longest segment's
    n-grams, and its used slots. A slot is one row ``(key, first position << 32 | count)``, count 0 when
    empty: a probe reads one cache line, where separate key, count and position arrays read three (a
    document's n-grams overflow the processor's caches)."""
    shift = np.uint64(1)
    for _ in range(n - 1):
        shift = shift * base
    longest = 0
    for s in range(starts.shape[0]):
        longest = max(longest, ends[s] - starts[s] - n + 1)
    size = 16
    while size < 2 * longest:
        size <<= 1
    table = np.zeros((size, 2), dtype=np.uint64)
    used = np.empty(max(longest, 1), dtype=np.int64)
    return shift, table, used


_ngram_tables = _jit(_ngram_tables)


def _count_ngrams(a, lo, total, n, base, shift, ngrams, used):  # pragma: no cover - compiled
    """Count the ``total`` n-grams of ``a`` starting at ``lo`` (symbols: code points or word ids) exactly:
    a rolling hash picks the slot, and two n-grams share a slot only after their symbols compare equal.
    Only the part of the table sized for this segment is used (short ones stay in cache); returns the
    number of distinct n-grams, whose slots are ``used[:distinct]`` (count: :func:`_slot_count`). The
    caller empties those slots (``ngrams[j, 1] = 0``). Positions and counts fit 32 bits (texts of fewer
    than 2**32 code points)."""
    seg_size = 16
    while seg_size < 2 * total:
        seg_size <<= 1
    mask = np.uint64(seg_size - 1)
    one = np.uint64(1)
    h = np.uint64(0)
    for i in range(lo, lo + n):
        h = h * base + np.uint64(a[i]) + one
    distinct = 0
    for i in range(lo, lo + total):
        if i > lo:
            h = (h - (np.uint64(a[i - 1]) + one) * shift) * base + np.uint64(a[i + n - 1]) + one
        j = ((h * np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(17)) & mask
        while True:
            slot = ngrams[j, 1]
            if slot == 0:
                ngrams[j, 0] = h
                ngrams[j, 1] = (np.uint64(i) << np.uint64(32)) | one
                used[distinct] = j
                distinct += 1
                break
            if ngrams[j, 0] == h:
                f = np.int64(slot >> np.uint64(32))
                same = True
                for t in range(n):
                    if a[f + t] != a[i + t]:
                        same = False
                        break
                if same:
                    ngrams[j, 1] = slot + one
                    break
            j = (j + one) & mask
    return distinct


_count_ngrams = _jit(_count_ngrams)


def _slot_count(table, j):  # pragma: no cover - compiled
    """The count of slot ``j`` of a :func:`_count_ngrams` table."""
    return np.int64(table[j, 1] & np.uint64(0xFFFFFFFF))


_slot_count = _jit(_slot_count)


def _kernel(a, starts, ends, n, table, top, special, tokens, punct):  # pragma: no cover - compiled
    base = np.uint64(0x9E3779B97F4A7C15)
    shift, ngrams, used = _ngram_tables(starts, ends, n, base)
    rep = np.empty(used.shape[0], dtype=np.int64)  # a segment's counts above 1
    for s in range(starts.shape[0]):
        lo, hi = starts[s], ends[s]
        # special characters, [\w']+ runs and punctuation characters
        n_special = 0
        n_runs = 0
        n_punct = 0
        prev_word = False
        for i in range(lo, hi):
            c = table[a[i]]
            if c & 1:
                n_special += 1
            if c & 4:
                n_punct += 1
            w = (c & 2) != 0
            if w and not prev_word:
                n_runs += 1
            prev_word = w
        special[s] = n_special
        tokens[s] = n_runs + n_punct
        punct[s] = n_punct
        # character n-grams: exact counts in an open-addressing table
        total = hi - lo - n + 1
        top[s] = 0
        if total <= 0:
            continue
        distinct = _count_ngrams(a, lo, total, n, base, shift, ngrams, used)
        # one pass over the used slots: the counts above 1 kept, every slot emptied for the next segment
        n_rep = 0
        for u in range(distinct):
            c2 = _slot_count(ngrams, used[u])
            ngrams[used[u], 1] = 0
            if c2 > 1:
                rep[n_rep] = c2
                n_rep += 1
        k = int(np.sqrt(distinct))
        while k * k > distinct:
            k -= 1
        while (k + 1) * (k + 1) <= distinct:
            k += 1
        k = min(k, n_rep)
        if k > 0:  # the sum of the k largest counts: a partition, not a sort, finds them
            largest = np.partition(rep[:n_rep], n_rep - k)
            acc = 0
            for r in range(n_rep - k, n_rep):
                acc += largest[r]
            top[s] = acc


_COMPILED: list = []


def _compiled():
    if not _COMPILED:
        _COMPILED.append(numba.njit(cache=True, nogil=True)(_kernel))
    return _COMPILED[0]


class CharStats:
    """Per-text results of :func:`char_stats`, as lists of Python numbers; the ratios as columns."""

    __slots__ = ("lengths", "top", "special", "tokens", "punct", "n", "_columns")

    def __init__(self, lengths, top, special, tokens, punct, n):
        self.lengths, self.top, self.special, self.tokens, self.punct, self.n = \
            lengths, top, special, tokens, punct, n
        self._columns: dict = {}

    def char_rep_ratios(self) -> list[float]:
        """= ``[text_metrics.character_repetition_ratio(t, n) for t in texts]``."""
        n = self.n
        return [top / (length - n + 1) if top and length - n + 1 > 0 else 0.0
                for top, length in zip(self.top, self.lengths)]

    def special_ratios(self) -> list[float]:
        """= ``[text_metrics.special_character_ratio(t) for t in texts]``."""
        return [special / length if length else 0.0 for special, length in zip(self.special, self.lengths)]

    def punct_ratios(self, min_tokens: int = -1) -> list[float]:
        """= ``[text_metrics.punctuation_ratio(t, min_tokens) for t in texts]``."""
        return [(punct / tokens if tokens >= min_tokens else 1.0) if tokens else 0.0
                for punct, tokens in zip(self.punct, self.tokens)]

    def _column(self, key, make) -> list[float]:
        col = self._columns.get(key)
        if col is None:
            col = self._columns[key] = make()
        return col

    def char_rep(self, i: int) -> float:
        return self._column("char_rep", self.char_rep_ratios)[i]

    def special_ratio(self, i: int) -> float:
        return self._column("special", self.special_ratios)[i]

    def punct_ratio(self, i: int, min_tokens: int = -1) -> float:
        return self._column(("punct", min_tokens), lambda: self.punct_ratios(min_tokens))[i]


def _spans(lengths: list[int], sep: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of texts of ``lengths`` laid end to end with ``sep`` symbols between them, as int64
    arrays. A document's few paragraphs: by ``itertools.accumulate`` (~2-4 µs, against ~5-6 for NumPy's
    calls); many: by ``np.cumsum`` (faster from ~64 on)."""
    m = len(lengths)
    if m < 64:
        at = np.fromiter(accumulate(lengths, lambda p, k: p + k + sep, initial=0), dtype=np.int64, count=m + 1)
    else:
        at = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.asarray(lengths, dtype=np.int64) + sep, out=at[1:])
    return at[:-1], at[1:] - sep


def char_stats(texts: list[str], n: int) -> CharStats:
    """Character-repetition numerators (sum of the k largest n-gram counts), special-character counts,
    punctuation-token and punctuation counts of every text, in one compiled pass."""
    lengths = list(map(len, texts))
    starts, ends = _spans(lengths, 1)
    a = code_points("\n".join(texts))
    out = np.zeros((4, len(texts)), dtype=np.int64)  # top, special, tokens, punct
    _compiled()(a, starts, ends, n, class_table(), out[0], out[1], out[2], out[3])
    return CharStats(lengths, *out.tolist(), n)


def _word_kernel(ids, starts, ends, n, repeated):  # pragma: no cover - compiled
    base = np.uint64(0xC2B2AE3D27D4EB4F)
    shift, ngrams, used = _ngram_tables(starts, ends, n, base)
    for s in range(starts.shape[0]):
        lo, hi = starts[s], ends[s]
        total = hi - lo - n + 1
        repeated[s] = 0
        if total <= 0:
            continue
        distinct = _count_ngrams(ids, lo, total, n, base, shift, ngrams, used)
        acc = 0
        for u in range(distinct):
            c = _slot_count(ngrams, used[u])
            if c > 1:
                acc += c
            ngrams[used[u], 1] = 0
        repeated[s] = acc


_WORD_COMPILED: list = []


def word_repetition_many(word_lists: list[list[str]], n: int) -> list[float]:
    """``[text_metrics.word_repetition_ratio(words, n) for words in word_lists]`` in one compiled pass:
    words become integer ids (equal words, equal ids), and word n-grams are counted exactly as tuples
    of ids (the original joins them with spaces; words never contain one)."""
    if not _WORD_COMPILED:
        _WORD_COMPILED.append(numba.njit(cache=True, nogil=True)(_word_kernel))
    m = len(word_lists)
    lengths = np.fromiter(map(len, word_lists), dtype=np.int64, count=m)
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    first: dict[str, int] = {}
    ids = np.fromiter(map(first.setdefault, chain.from_iterable(word_lists), count()), dtype=np.int64,
                      count=int(lengths.sum()))
    repeated = np.zeros(m, dtype=np.int64)
    _WORD_COMPILED[0](ids, starts, starts + lengths, n, repeated)
    return [r / (k - n + 1) if r else 0.0 for r, k in zip(repeated.tolist(), lengths.tolist())]


def _grown(slots):  # pragma: no cover - compiled
    """A word table of twice the slots with the rows of ``slots`` inserted again (same keys, same ids)."""
    size = slots.shape[0] * 2
    mask = np.uint64(size - 1)
    out = np.zeros((size, 2), dtype=np.uint64)
    for j in range(slots.shape[0]):
        if slots[j, 1] != 0:
            k = ((slots[j, 0] * np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(17)) & mask
            while out[k, 1] != 0:
                k = (k + np.uint64(1)) & mask
            out[k, 0] = slots[j, 0]
            out[k, 1] = slots[j, 1]
    return out


_grown = _jit(_grown)


def _split_kernel(a, starts, ends, table, ids, n_words, uniq_start, uniq_end, ubits, slots, s0, i0, w, u,
                  vhash, vbits, vstart, vend, vchars, in_vocab):  # pragma: no cover - compiled
    """Words of each segment of the (lower-cased) code points ``a``: pieces between " ", "\\n", "\\t" with
    the special characters (table bit 1) stripped from both ends, empty ones dropped. Writes every
    word's id (equal words, equal ids; ids numbered by first occurrence), each id's first span, and per
    segment how many words are in vocabulary v (``in_vocab[s, v]``; the vocabularies' words are in
    ``vchars``, found by their hash ``vhash`` (sorted) and compared in full, member of vocabulary v
    if bit v of ``vbits`` is set). Starts at code point ``i0`` of segment ``s0`` with ``w`` words (``n_words[s0]``
    of them in that segment) and ``u`` distinct words already in the word table ``slots`` (a row (key, id + 1)
    a slot, 0 when empty: one cache line a probe; ``ubits[id]``: the id's vocabulary bits), kept at most
    half full: returns (segment, code point, number of words, number of distinct words) where it stopped,
    the end (number of segments, 0, ...) or before a new word the table has no room for (the caller grows
    it and calls again from there)."""
    nv = in_vocab.shape[1]
    size = slots.shape[0]
    mask = np.uint64(size - 1)
    for s in range(s0, starts.shape[0]):
        lo, hi = starts[s], ends[s]
        count = 0
        i = lo
        if s == s0 and i0 > lo:
            count = n_words[s]
            i = i0
        while i < hi:
            c = a[i]
            if c == 32 or c == 10 or c == 9:
                i += 1
                continue
            j = i + 1
            while j < hi:
                c = a[j]
                if c == 32 or c == 10 or c == 9:
                    break
                j += 1
            b, e = i, j
            i = j
            while b < e and table[a[b]] & 1:
                b += 1
            while e > b and table[a[e - 1]] & 1:
                e -= 1
            if b == e:
                continue
            h = np.uint64(0xCBF29CE484222325)
            for t in range(b, e):
                h = (h ^ np.uint64(a[t])) * np.uint64(0x100000001B3)
            k = ((h * np.uint64(0xD6E8FEB86659FD93)) >> np.uint64(17)) & mask
            while True:
                sid = np.int64(slots[k, 1]) - 1
                if sid < 0:
                    if 2 * (u + 1) > size:
                        n_words[s] = count
                        return s, b, w, u
                    slots[k, 1] = np.uint64(u + 1)
                    slots[k, 0] = h
                    uniq_start[u] = b
                    uniq_end[u] = e
                    bits = 0
                    v = np.searchsorted(vhash, h)
                    while v < vhash.shape[0] and vhash[v] == h:
                        if vend[v] - vstart[v] == e - b:
                            same = True
                            for t in range(e - b):
                                if vchars[vstart[v] + t] != a[b + t]:
                                    same = False
                                    break
                            if same:
                                bits = vbits[v]
                                break
                        v += 1
                    ubits[u] = bits
                    sid = u
                    ids[w] = u
                    u += 1
                    break
                if slots[k, 0] == h:
                    fb, fe = uniq_start[sid], uniq_end[sid]
                    same = fe - fb == e - b
                    if same:
                        for t in range(e - b):
                            if a[fb + t] != a[b + t]:
                                same = False
                                break
                    if same:
                        ids[w] = sid
                        break
                k = (k + np.uint64(1)) & mask
            bits = ubits[sid]
            if bits:
                for v in range(nv):
                    if (bits >> v) & 1:
                        in_vocab[s, v] += 1
            w += 1
            count += 1
        n_words[s] = count
    return starts.shape[0], 0, w, u


_SPLIT_COMPILED: list = []


class Words:
    """Words of many paragraphs (:func:`words_many`): ``counts[i]`` words in paragraph ``i``, every word's id
    in ``ids`` (paragraph ``i`` owns ``ids[offsets[i]:offsets[i + 1]]``), how many of each paragraph's
    words are in each vocabulary (``in_vocab[name][i]``), and the words themselves (``distinct`` by id
    and ``words`` per paragraph, built on first use: the chain needs only the numbers)."""

    __slots__ = ("counts", "ids", "offsets", "in_vocab", "_low", "_spans", "_distinct", "_words")

    def __init__(self, counts, ids, offsets, in_vocab, low, spans):
        self.counts, self.ids, self.offsets, self.in_vocab = counts, ids, offsets, in_vocab
        self._low, self._spans = low, spans
        self._distinct = self._words = None

    @property
    def distinct(self) -> list[str]:
        if self._distinct is None:
            low = self._low
            self._distinct = [low[b:e] for b, e in zip(*(x.tolist() for x in self._spans))]
        return self._distinct

    @property
    def words(self) -> list[list[str]]:
        """``get_words`` of every paragraph."""
        if self._words is None:
            flat = list(map(self.distinct.__getitem__, self.ids.tolist()))
            self._words = [flat[self.offsets[i]:self.offsets[i + 1]] for i in range(len(self.counts))]
        return self._words


class Vocabularies:
    """Word sets prepared for :func:`words_many`: each word's code points, found by the kernel's hash."""

    def __init__(self, vocabularies: dict):
        if len(vocabularies) > 62:
            raise ValueError("at most 62 vocabularies")
        self.names = list(vocabularies)
        bits: dict[str, int] = {}
        for v, name in enumerate(self.names):
            for word in vocabularies[name]:
                bits[word] = bits.get(word, 0) | (1 << v)
        words = list(bits)
        hashes = np.fromiter(map(_fnv, words), dtype=np.uint64, count=len(words))
        order = np.argsort(hashes, kind="stable")
        words = [words[i] for i in order.tolist()]
        self.hash = hashes[order]
        self.bits = np.fromiter((bits[w] for w in words), dtype=np.int64, count=len(words))
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.start = np.zeros(len(words), dtype=np.int64)
        np.cumsum(lengths[:-1], out=self.start[1:])
        self.end = self.start + lengths
        self.chars = code_points("".join(words)) if words else np.zeros(0, dtype=np.uint32)


def _fnv(word: str) -> int:
    """The kernel's word hash (FNV-1a over code points, 64-bit)."""
    h = 0xCBF29CE484222325
    for c in word:
        h = ((h ^ ord(c)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def words_many(texts: list[str], vocabularies: Vocabularies | None = None) -> Words:
    """``[text_metrics.get_words(t) for t in texts]`` in one compiled pass, with word ids and counts of
    words in each of ``vocabularies``.

    Each text is lower-cased by ``str.lower`` as ``get_words`` does; the pieces, the strip of special
    characters and the dropping of empty words happen in the kernel, which splits on " ", "\\n" and
    "\\t" only: the original's splitter (``get_words`` uses ``str.split()`` only when the two agree).
    """
    if not _SPLIT_COMPILED:
        _SPLIT_COMPILED.append(numba.njit(cache=True, nogil=True)(_split_kernel))
    voc = vocabularies
    if voc is None:
        if not _NO_VOCABULARY:
            _NO_VOCABULARY.append(Vocabularies({}))
        voc = _NO_VOCABULARY[0]
    lows = [t.lower() for t in texts]
    m = len(lows)
    low = "\n".join(lows)
    a = code_points(low)
    starts, ends = _spans(list(map(len, lows)), 1)
    cap = len(a) // 2 + 1
    ids = np.empty(cap, dtype=np.int64)
    n_words = np.zeros(m, dtype=np.int64)
    ustart = np.empty(cap, dtype=np.int64)
    uend = np.empty(cap, dtype=np.int64)
    in_vocab = np.zeros((m, max(len(voc.names), 1)), dtype=np.int64)
    # the word table: at most half full, sized for a quarter of the code points at first and doubled when
    # full. (Sized for the most distinct words the text can have, half its code points, it was ~8x too large:
    # the report's sample of 267 documents, 1.1 M code points, zeroed and touched 32 MB.)
    size = 64
    while size < len(a) // 4:
        size <<= 1
    slots = np.zeros((size, 2), dtype=np.uint64)
    ubits = np.empty(cap, dtype=np.int64)
    s, i, nw, nu = 0, 0, 0, 0
    table = class_table()
    while True:
        s, i, nw, nu = _SPLIT_COMPILED[0](a, starts, ends, table, ids, n_words, ustart, uend, ubits, slots, s, i,
                                          nw, nu, voc.hash, voc.bits, voc.start, voc.end, voc.chars, in_vocab)
        if s == m:
            break
        slots = _grown(slots)
    n_per = n_words.tolist()
    off = list(accumulate(n_per, initial=0))
    counts = {name: in_vocab[:, v].tolist() for v, name in enumerate(voc.names)}
    return Words(n_per, ids[:nw], off, counts, low, (ustart[:nu], uend[:nu]))


_NO_VOCABULARY: list = []


def word_repetition_ids(ids: np.ndarray, lengths: list[int], n: int) -> list[float]:
    """Word repetition ratio (``text_metrics.word_repetition_ratio``) of consecutive runs of word ids of
    the given ``lengths``."""
    if not _WORD_COMPILED:
        _WORD_COMPILED.append(numba.njit(cache=True, nogil=True)(_word_kernel))
    starts, ends = _spans(lengths, 0)
    repeated = np.zeros(len(lengths), dtype=np.int64)
    _WORD_COMPILED[0](ids, starts, ends, n, repeated)
    return [r / (k - n + 1) if r else 0.0 for r, k in zip(repeated.tolist(), lengths)]


# ---------------------------------------------------------------------------------------------------------
# Perplexity normalisation (filters.normalize.normalize) of many texts at once
# ---------------------------------------------------------------------------------------------------------
# One code per code point: 0 kept, 1 deleted (non-printing), 2 -> " " (odd space), 3 -> "0" (a \d digit),
# 4 + k -> the k-th replacement of UNICODE_PUNCTUATION; plus 128 if str.strip would strip it (\s).
_NORM: list = []


def _norm_tables():
    if not _NORM:
        every = "".join(map(chr, range(0x110000)))

        def matches(pattern: str) -> np.ndarray:
            marked = re.sub(pattern, "\x00", every).encode("utf-32-le", "surrogatepass")
            hit = np.frombuffer(marked, dtype=np.uint32) == 0
            hit[0] = re.fullmatch(pattern, "\x00") is not None
            return hit

        code = np.zeros(0x110000, dtype=np.uint8)
        # the steps of normalize(), applied last to first so that the first applicable one wins
        repl = list(UNICODE_PUNCTUATION.items())
        for k, (ch, _) in enumerate(repl):
            code[ord(ch)] = 4 + k
        code[matches(r"\d")] = 3
        code[[ord(c) for c in WHITESPACE_CHARS]] = 2
        code[matches(NON_PRINTING_CHARACTERS_RE.pattern)] = 1
        code[matches(r"\s")] |= 128
        width = max(len(r) for _, r in repl)
        out = np.zeros((4 + len(repl), width), dtype=np.uint32)
        out_len = np.zeros(4 + len(repl), dtype=np.int64)
        out[2, 0], out_len[2] = ord(" "), 1
        out[3, 0], out_len[3] = ord("0"), 1
        for k, (_, r) in enumerate(repl):
            out[4 + k, :len(r)] = [ord(c) for c in r]
            out_len[4 + k] = len(r)
        _NORM.append((code, out, out_len))
    return _NORM[0]


def _normalize_kernel(a, starts, ends, code, repl, repl_len, buf, out_start, out_end):  # pragma: no cover
    w = 0
    for s in range(starts.shape[0]):
        lo, hi = starts[s], ends[s]
        # strip: after deleting non-printing characters, leading and trailing \s go
        while lo < hi and (code[a[lo]] == 1 or code[a[lo]] >= 128):
            lo += 1
        while hi > lo and (code[a[hi - 1]] == 1 or code[a[hi - 1]] >= 128):
            hi -= 1
        out_start[s] = w
        for i in range(lo, hi):
            c = code[a[i]] & 127
            if c == 0:
                buf[w] = a[i]
                w += 1
            elif c >= 2:
                for t in range(repl_len[c]):
                    buf[w] = repl[c, t]
                    w += 1
        out_end[s] = w


_NORM_COMPILED: list = []


def normalize_many(texts: list[str]) -> list[str]:
    """``[perplexity.normalize(t) for t in texts]`` in one compiled pass (tests/filters/test_fast_metrics.py
    compares them on every shared paragraph and document)."""
    if not _NORM_COMPILED:
        _NORM_COMPILED.append(numba.njit(cache=True, nogil=True)(_normalize_kernel))
    code, repl, repl_len = _norm_tables()
    m = len(texts)
    starts, ends = _spans(list(map(len, texts)), 1)
    a = code_points("\n".join(texts))
    buf = np.empty(len(a) * repl.shape[1] + 1, dtype=np.uint32)
    out_start = np.zeros(m, dtype=np.int64)
    out_end = np.zeros(m, dtype=np.int64)
    _NORM_COMPILED[0](a, starts, ends, code, repl, repl_len, buf, out_start, out_end)
    total = int(out_end[-1]) if m else 0
    joined = buf[:total].tobytes().decode("utf-32-le", "surrogatepass")
    return [joined[b:e] for b, e in zip(out_start.tolist(), out_end.tolist())]
