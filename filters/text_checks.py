"""The text checks of reference §5.3–§5.4, declared once: paragraph level, document level and the
report's histograms all read this list.

Each :class:`TextCheck` names a metric (the drop reason is its name), the cutoff keys it reads from
the level's config (:class:`filters.text_filters.NodeChecks` or ``DocChecks``) and the word list it
needs. The comparison is the same for all: a document or paragraph is dropped when its value is
strictly below the ``*_min`` cutoff or strictly above the ``*_max`` one (word-count ranges are thus
inclusive); a cutoff set to ``null`` switches that side off. Checks run in the list's order and the
first failure decides.

Two implementations compute the same values:

- :data:`REFERENCE`: the plain functions of :mod:`filters.text_metrics`, one text at a time (the oracle
  of tests/filters/test_fast_metrics.py, and the path without Numba);
- :func:`batch_columns`: every metric of many paragraphs at once from the compiled kernels of
  :mod:`filters.fast_metrics`, as NumPy columns; :func:`first_failures` then applies the list to all
  paragraphs at once.

Adding a check: one :class:`TextCheck` line here, its value in :data:`REFERENCE` and in
:func:`batch_columns` (and :class:`filters.text_filters.DocumentValues`), and its cutoff in the config
dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from filters.base import Verdict
from filters.text_metrics import (
    character_repetition_ratio,
    punctuation_ratio,
    special_character_ratio,
    word_ratio,
    word_repetition_ratio,
)


@dataclass(frozen=True)
class TextCheck:
    """One check: the metric ``name`` (also the drop reason), its cutoff keys, and the word list it needs."""

    name: str
    min_key: str | None = None
    max_key: str | None = None
    vocabulary: str | None = None   # "stop", "flagged", "common": the check is off when the list is absent

    def cutoffs(self, cut) -> tuple[float | None, float | None]:
        """(minimum, maximum) of this check in the level's config ``cut`` (None: that side off)."""
        return (getattr(cut, self.min_key) if self.min_key else None,
                getattr(cut, self.max_key) if self.max_key else None)


TEXT_CHECKS: tuple[TextCheck, ...] = (
    TextCheck("number_words", "number_words_min", "number_words_max"),
    TextCheck("character_repetition_ratio", max_key="character_repetition_max"),
    TextCheck("word_repetition_ratio", max_key="word_repetition_max"),
    TextCheck("special_character_ratio", max_key="special_character_ratio_max"),
    TextCheck("stopword_ratio", min_key="stopword_ratio_min", vocabulary="stop"),
    TextCheck("flagged_word_ratio", max_key="flagged_word_ratio_max", vocabulary="flagged"),
    TextCheck("punctuation_ratio", min_key="punctuation_ratio_min"),
    TextCheck("common_word_ratio", min_key="common_word_ratio_min", vocabulary="common"),
)

Plan = list[tuple[TextCheck, float | None, float | None]]


def plan(cut, vocabularies: dict) -> Plan:
    """The checks that run with config ``cut``: (check, minimum, maximum), in order; a check with both
    cutoffs null, or whose word list is absent (``vocabularies[name]`` None), is left out."""
    out = []
    for check in TEXT_CHECKS:
        lo, hi = check.cutoffs(cut)
        if (lo is None and hi is None) or (check.vocabulary and vocabularies.get(check.vocabulary) is None):
            continue
        out.append((check, lo, hi))
    return out


def fails(value: float, lo: float | None, hi: float | None) -> bool:
    """The one comparison: strictly below the minimum or strictly above the maximum."""
    return (lo is not None and value < lo) or (hi is not None and value > hi)


# -- reference implementation: one text, the plain functions ----------------------------------------------
def _punctuation(text, words, cut, vocabularies):
    return punctuation_ratio(text, getattr(cut, "punctuation_min_tokens", -1))


# name -> value(text, words, cut, vocabularies); ``words`` = text_metrics.get_words(text)
REFERENCE: dict[str, Callable] = {
    "number_words": lambda text, words, cut, v: len(words),
    "character_repetition_ratio": lambda text, words, cut, v: character_repetition_ratio(
        text, cut.character_repetition_length),
    "word_repetition_ratio": lambda text, words, cut, v: word_repetition_ratio(words, cut.word_repetition_length),
    "special_character_ratio": lambda text, words, cut, v: special_character_ratio(text),
    "stopword_ratio": lambda text, words, cut, v: word_ratio(words, v["stop"]),
    "flagged_word_ratio": lambda text, words, cut, v: word_ratio(words, v["flagged"]),
    "punctuation_ratio": _punctuation,
    "common_word_ratio": lambda text, words, cut, v: word_ratio(words, v["common"]),
}


def reference_verdict(text: str, words: list[str], checks: Plan, cut, vocabularies: dict) -> Verdict:
    """The first failing check of ``text`` (``words`` its words), computed with the plain functions."""
    for check, lo, hi in checks:
        if fails(REFERENCE[check.name](text, words, cut, vocabularies), lo, hi):
            return check.name
    return None


def reference_values(text: str, words: list[str], checks, cut, vocabularies: dict) -> dict[str, float]:
    """Every metric of ``checks`` (TextCheck objects) for ``text``, with the plain functions."""
    return {c.name: REFERENCE[c.name](text, words, cut, vocabularies) for c in checks}


# -- compiled implementation: many paragraphs, NumPy columns ------------------------------------------------
def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, else 0.0 (exactly Python's int / int for counts below 2**53)."""
    out = np.zeros(len(den), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def batch_columns(words, chars, word_rep: list[float], cut, names) -> dict[str, np.ndarray]:
    """The metric columns ``names`` of a batch of paragraphs: ``words`` (:class:`fast_metrics.Words`),
    ``chars`` (:class:`fast_metrics.CharStats`), ``word_rep`` (their word repetition ratios)."""
    counts = np.asarray(words.counts, dtype=np.int64)
    lengths = np.asarray(chars.lengths, dtype=np.int64)
    cols: dict[str, np.ndarray] = {}
    for name in names:
        if name == "number_words":
            cols[name] = counts
        elif name == "character_repetition_ratio":
            top = np.asarray(chars.top, dtype=np.int64)
            total = lengths - chars.n + 1
            cols[name] = _ratio(top, np.where(top > 0, total, 0))
        elif name == "word_repetition_ratio":
            cols[name] = np.asarray(word_rep, dtype=np.float64)
        elif name == "special_character_ratio":
            cols[name] = _ratio(np.asarray(chars.special, dtype=np.int64), lengths)
        elif name in ("stopword_ratio", "flagged_word_ratio", "common_word_ratio"):
            vocab = {"stopword_ratio": "stop", "flagged_word_ratio": "flagged", "common_word_ratio": "common"}[name]
            cols[name] = _ratio(np.asarray(words.in_vocab[vocab], dtype=np.int64), counts)
        elif name == "punctuation_ratio":
            tokens = np.asarray(chars.tokens, dtype=np.int64)
            col = _ratio(np.asarray(chars.punct, dtype=np.int64), tokens)
            col[(tokens > 0) & (tokens < getattr(cut, "punctuation_min_tokens", -1))] = 1.0
            cols[name] = col
        else:
            raise KeyError(f"no compiled column for text check {name!r}")
    return cols


def first_failures(columns: dict[str, np.ndarray], checks: Plan, m: int) -> list[Verdict]:
    """For each of ``m`` paragraphs, the name of the first check it fails (None: it passes all)."""
    first = np.full(m, len(checks), dtype=np.int64)
    for k in range(len(checks) - 1, -1, -1):  # last to first: the first failing check is written last
        check, lo, hi = checks[k]
        v = columns[check.name]
        fail = np.zeros(m, dtype=bool)
        if lo is not None:
            fail |= v < lo
        if hi is not None:
            fail |= v > hi
        first[fail] = k
    names: list[Verdict] = [c.name for c, _, _ in checks] + [None]
    return [names[k] for k in first.tolist()]
