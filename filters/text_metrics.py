"""Text metrics of the OBELICS filters, exactly as docs/reference.md §5.2 defines them.

Every function is pure and takes the raw text (and a word list where it needs one). They are written
for speed on CPython (``str.split``/``str.strip``/``str.translate`` instead of per-character loops)
but compute the same values as the original ``FilteringFunctions``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Set

import numpy as np

from filters.wordlists import PUNCTUATION, SPECIAL_CHARACTERS

# Single characters of SPECIAL_CHARACTERS: what the original's per-character strip loop can remove.
_STRIP_CHARS = "".join(sorted(c for c in SPECIAL_CHARACTERS if len(c) == 1))
_SPECIAL_SINGLE = frozenset(_STRIP_CHARS)
_STRIP_ASCII = "".join(c for c in _STRIP_CHARS if c < "\x80")
_PUNCT_TOKEN_RE = re.compile(r"[\w']+|[,;:?!.]")

# docs/reference.md §5.1: characters mapped to an ASCII space by whitespace standardisation.
WHITESPACE_CHARS = "\u2009\u200a\u202f\u2005\u3000\u2002\u2008\u2003\ufffc\u0084\u00a0"


_WHITESPACE_RE = re.compile(f"[{WHITESPACE_CHARS}]")


def standardize_whitespace(text: str) -> str:
    """Map the odd spaces of docs/reference.md §5.1 to an ASCII space."""
    return _WHITESPACE_RE.sub(" ", text)  # faster than str.translate, which looks up every character


def _word_count_python(text: str) -> int:
    return len(text.split())


def _compiled_word_count():
    import os

    if not os.environ.get("OBELICS_PURE_PYTHON"):
        try:
            from obelics.html._walk import word_count
        except ImportError:  # not built (or built before it had the function): the plain count
            return _word_count_python
        return word_count
    return _word_count_python


#: ``count_words(text) == len(text.split())``, without making the words where the compiled module is built.
count_words = _compiled_word_count()


# Whitespace that str.split() splits on but the original's splitter (" ", "\\n", "\\t") does not.
_OTHER_WHITESPACE_RE = re.compile("[\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def get_words(text: str) -> list[str]:
    """Words as the original splits them: on " ", "\\n", "\\t"; lower-cased; special characters
    stripped from both ends; empty pieces dropped.

    The whole text is lower-cased once (``str.lower`` never looks across a space, tab or newline, so
    this equals lower-casing each word); ``str.split()`` is used when the text has no other whitespace
    (then it splits exactly as the original); ``str.strip`` (slow with a 1,600-character set) only
    runs on words that start or end with a special character.
    """
    low = text.lower()
    if _OTHER_WHITESPACE_RE.search(low) is None:
        pieces = low.split()
    else:
        pieces = [w for w in low.replace("\n", " ").replace("\t", " ").split(" ") if w]
    special = _SPECIAL_SINGLE
    chars, ascii_chars = _STRIP_CHARS, _STRIP_ASCII
    # strip the ASCII specials first (str.strip scans its whole argument per character), then the rest
    # only if a special character is still at an end: the same as one strip with every special character
    out = [(x if not (x := w.strip(ascii_chars)) or (x[0] not in special and x[-1] not in special)
            else x.strip(chars)) if (w[0] in special or w[-1] in special) else w for w in pieces]
    if "" in out:
        out = [w for w in out if w]
    return out


def character_repetition_ratio(text: str, n: int) -> float:
    """ROOTS character repetition: share of the n-grams taken by the k most frequent ones,
    k = min(floor(sqrt(D)), D - S) with D distinct n-grams and S n-grams seen once."""
    total = len(text) - n + 1
    if total <= 0:
        return 0.0
    if total >= _HASH_MIN_LENGTH:
        counts = _ngram_counts_hashed(text, n)
        distinct = len(counts)
        repeated = counts[counts > 1]
        k = min(math.isqrt(distinct), len(repeated))
        if k <= 0:
            return 0.0
        repeated.sort()
        return int(repeated[-k:].sum()) / total
    counts = Counter([text[i:i + n] for i in range(total)]).values()
    distinct = len(counts)
    repeated = [c for c in counts if c > 1]
    k = min(math.isqrt(distinct), len(repeated))
    if k <= 0:
        return 0.0
    repeated.sort(reverse=True)
    return sum(repeated[:k]) / total


# Long texts: count n-grams by a 64-bit polynomial hash of their code points, vectorised with NumPy
# (prefix sums of a[j]*B^j, then multiplied by B^-i; all mod 2^64). About 3x faster than a Counter of
# slices past a few hundred characters. Two distinct n-grams share a hash with probability ~2^-64
# per pair, i.e. ~1e-11 for a 20,000-character document; the result is otherwise identical.
_HASH_MIN_LENGTH = 150
_HASH_BASE = 0x9E3779B97F4A7C15
_POWERS = {"pow": np.ones(1, dtype=np.uint64), "ipow": np.ones(1, dtype=np.uint64)}


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """B^j and B^-j (mod 2^64) for j < length, cached and grown by doubling."""
    pw, ipw = _POWERS["pow"], _POWERS["ipow"]
    if len(pw) < length:
        size = max(length, 2 * len(pw))
        with np.errstate(over="ignore"):
            pw = np.full(size, _HASH_BASE, dtype=np.uint64)
            pw[0] = 1
            pw = np.cumprod(pw)
            ipw = np.full(size, pow(_HASH_BASE, -1, 1 << 64), dtype=np.uint64)
            ipw[0] = 1
            ipw = np.cumprod(ipw)
        _POWERS["pow"], _POWERS["ipow"] = pw, ipw
    return pw[:length], ipw[:length]


def _ngram_counts_hashed(text: str, n: int) -> np.ndarray:
    a = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    total = len(a) - n + 1
    pw, ipw = _powers(len(a))
    with np.errstate(over="ignore"):
        c = np.empty(len(a) + 1, dtype=np.uint64)
        c[0] = 0
        np.cumsum((a + np.uint64(1)) * pw, out=c[1:])
        h = (c[n:n + total] - c[:total]) * ipw[:total]
    h.sort()
    starts = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1])))
    return np.diff(np.append(starts, total))


def word_repetition_ratio(words: list[str], n: int) -> float:
    """Share of word n-grams that belong to an n-gram occurring more than once.

    The original joins each n-gram with spaces; words never contain a space, so counting tuples of
    words gives the same counts without building the strings.
    """
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    counts = Counter(zip(*[words[i:] for i in range(n)]))
    if len(counts) == total:
        return 0.0
    return sum(c for c in counts.values() if c > 1) / total


def special_character_ratio(text: str) -> float:
    """Characters of ``text`` in SPECIAL_CHARACTERS over ``len(text)`` (0 for an empty text)."""
    if not text:
        return 0.0
    return special_character_count(text) / len(text)


# A boolean table over all code points, for counting special characters of long texts with NumPy.
_SPECIAL_TABLE = np.zeros(0x110000, dtype=bool)
_SPECIAL_TABLE[[ord(c) for c in _STRIP_CHARS]] = True


def special_character_count(text: str) -> int:
    """Number of characters of ``text`` in SPECIAL_CHARACTERS."""
    if len(text) < 64:
        return sum(map(_SPECIAL_SINGLE.__contains__, text))
    return int(np.count_nonzero(_SPECIAL_TABLE[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]))


def word_ratio(words: list[str], vocabulary: Set[str]) -> float:
    """Words found in ``vocabulary`` over all words (0 when there are none)."""
    if not words:
        return 0.0
    return sum(map(vocabulary.__contains__, words)) / len(words)


def punctuation_ratio(text: str, min_tokens: int = -1) -> float:
    """Punctuation tokens over all ``[\\w']+|[,;:?!.]`` tokens: 0 with no token, 1.0 with fewer than
    ``min_tokens`` (the node-level exemption)."""
    tokens = _PUNCT_TOKEN_RE.findall(text)
    if not tokens:
        return 0.0  # checked first, as the original does: no tokens gives 0 even under min_tokens
    if len(tokens) < min_tokens:
        return 1.0
    return sum(1 for t in tokens if t in PUNCTUATION) / len(tokens)


def text_metrics(text: str, stopwords: Collection[str] = (), flagged: Collection[str] = (),
                 char_rep_n: int = 10, word_rep_n: int = 5, punct_min_tokens: int = -1) -> dict[str, float]:
    """All metrics of one text at once, keyed like the reference files (``words``, ``char_rep``, ...)."""
    words = get_words(text)
    return {
        "words": len(words),
        "char_rep": character_repetition_ratio(text, char_rep_n),
        "word_rep": word_repetition_ratio(words, word_rep_n),
        "special": special_character_ratio(text),
        "stop": word_ratio(words, stopwords),
        "flagged": word_ratio(words, flagged),
        "punct": punctuation_ratio(text, punct_min_tokens),
    }
