"""Text metrics of the OBELICS filters, exactly as reference §5.2 defines them.

Every function is pure and takes the raw text (and a word list where it needs one). They are written
for speed on CPython (``str.split``/``str.strip``/``str.translate`` instead of per-character loops)
but compute the same values as the original ``FilteringFunctions``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection

from filters.wordlists import PUNCTUATION, SPECIAL_CHARACTERS

# Single characters of SPECIAL_CHARACTERS: what the original's per-character strip loop can remove.
_STRIP_CHARS = "".join(sorted(c for c in SPECIAL_CHARACTERS if len(c) == 1))
_DELETE_SPECIAL = {ord(c): None for c in _STRIP_CHARS}
_PUNCT_TOKEN_RE = re.compile(r"[\w']+|[,;:?!.]")

# Reference §5.1: characters mapped to an ASCII space by whitespace standardisation.
WHITESPACE_CHARS = "\u2009\u200a\u202f\u2005\u3000\u2002\u2008\u2003\ufffc\u0084\u00a0"
_WHITESPACE_TABLE = {ord(c): " " for c in WHITESPACE_CHARS}


def standardize_whitespace(text: str) -> str:
    """Map the odd spaces of reference §5.1 to an ASCII space."""
    return text.translate(_WHITESPACE_TABLE)


def get_words(text: str) -> list[str]:
    """Words as the original splits them: on " ", "\\n", "\\t"; lower-cased; special characters
    stripped from both ends; empty pieces dropped."""
    out = []
    for w in text.replace("\n", " ").replace("\t", " ").split(" "):
        if w:
            w = w.lower().strip(_STRIP_CHARS)
            if w:
                out.append(w)
    return out


def character_repetition_ratio(text: str, n: int) -> float:
    """ROOTS character repetition: share of the n-grams taken by the k most frequent ones,
    k = min(floor(sqrt(D)), D - S) with D distinct n-grams and S n-grams seen once."""
    total = len(text) - n + 1
    if total <= 0:
        return 0.0
    counts = Counter([text[i:i + n] for i in range(total)]).values()
    distinct = len(counts)
    repeated = [c for c in counts if c > 1]
    k = min(math.isqrt(distinct), len(repeated))
    if k <= 0:
        return 0.0
    repeated.sort(reverse=True)
    return sum(repeated[:k]) / total


def word_repetition_ratio(words: list[str], n: int) -> float:
    """Share of word n-grams (space-joined) that belong to an n-gram occurring more than once."""
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    counts = Counter([" ".join(words[i:i + n]) for i in range(total)])
    return sum(c for c in counts.values() if c > 1) / total


def special_character_ratio(text: str) -> float:
    """Characters of ``text`` in SPECIAL_CHARACTERS over ``len(text)`` (0 for an empty text)."""
    if not text:
        return 0.0
    return (len(text) - len(text.translate(_DELETE_SPECIAL))) / len(text)


def word_ratio(words: list[str], vocabulary: Collection[str]) -> float:
    """Words found in ``vocabulary`` over all words (0 when there are none)."""
    if not words:
        return 0.0
    return sum(1 for w in words if w in vocabulary) / len(words)


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
