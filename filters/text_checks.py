"""The text checks of docs/reference.md §5.3–§5.4, declared once: paragraph level, document level and the
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
- :data:`COLUMNS`: every metric of many paragraphs from the results of the compiled kernels of
  :mod:`filters.fast_metrics` (one pass each over all paragraphs of a document); :meth:`Rows.verdicts`
  applies the list to all of them.

Adding a check: one :class:`TextCheck` line here, its value in :data:`REFERENCE` and in
:data:`COLUMNS`, and its cutoff in the config dataclasses (``NodeChecks``/``DocChecks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    levels: tuple[str, ...] = ("paragraph", "document")  # where it runs (its cutoff keys are in those configs)

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


def plan(cut, vocabularies: dict, level: str) -> Plan:
    """The checks that run at ``level`` with its config ``cut``: (check, minimum, maximum), in order; a check
    with both cutoffs null, or whose word list is absent (``vocabularies[name]`` None), is left out."""
    out = []
    for check in TEXT_CHECKS:
        if level not in check.levels:
            continue
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


# -- compiled implementation: many paragraphs, columns from the kernels' counts ---------------------------------
def _vocabulary_ratios(vocabulary: str):
    def column(rows: Rows) -> list[float]:
        return [k / n if n else 0.0 for k, n in zip(rows.words.in_vocab[vocabulary], rows.words.counts)]
    return column


# name -> column(rows): the metric of every row, from the results of the compiled kernels
COLUMNS: dict[str, Callable] = {
    "number_words": lambda rows: rows.words.counts,
    "character_repetition_ratio": lambda rows: rows.chars.char_rep_ratios(),
    "word_repetition_ratio": lambda rows: rows.word_rep,
    "special_character_ratio": lambda rows: rows.chars.special_ratios(),
    "stopword_ratio": _vocabulary_ratios("stop"),
    "flagged_word_ratio": _vocabulary_ratios("flagged"),
    "punctuation_ratio": lambda rows: rows.chars.punct_ratios(getattr(rows.cut, "punctuation_min_tokens", -1)),
    "common_word_ratio": _vocabulary_ratios("common"),
}


class Rows:
    """The kernels' results for ``m`` texts (paragraphs, or one document): ``words``
    (:class:`fast_metrics.Words`, or any object with ``counts`` and ``in_vocab``), ``chars``
    (:class:`fast_metrics.CharStats`) and ``word_rep`` (word repetition ratios); the last two may be given
    as zero-argument callables, then computed only when a check needs them."""

    def __init__(self, m: int, words, chars, word_rep, cut):
        self.m, self.words, self.cut = m, words, cut
        self._chars, self._word_rep = chars, word_rep

    @property
    def chars(self):
        if callable(self._chars):
            self._chars = self._chars()
        return self._chars

    @property
    def word_rep(self):
        if callable(self._word_rep):
            self._word_rep = self._word_rep()
        return self._word_rep

    def verdicts(self, checks: Plan) -> list[Verdict]:
        """The first check each row fails (None: it passes all). One row: each column is computed only
        when a check reaches it; many rows: the columns of every check, then the rows are judged."""
        if self.m == 1:
            for check, lo, hi in checks:
                if fails(COLUMNS[check.name](self)[0], lo, hi):
                    return [check.name]
            return [None]
        columns = [(c.name, COLUMNS[c.name](self), lo, hi) for c, lo, hi in checks]
        out: list[Verdict] = []
        for i in range(self.m):
            for name, column, lo, hi in columns:
                v = column[i]
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    out.append(name)
                    break
            else:
                out.append(None)
        return out
