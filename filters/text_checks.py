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
- :data:`COMPILED`: every metric of many paragraphs from the results of the compiled kernels of
  :mod:`filters.fast_metrics` (one pass each over all paragraphs of a document); :func:`first_failure`
  applies the list to one of them, computing each value only when a check reaches it.

Adding a check: one :class:`TextCheck` line here, its value in :data:`REFERENCE` and in
:data:`COMPILED`, and its cutoff in the config dataclasses (``NodeChecks``/``DocChecks``).
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


# -- compiled implementation: many paragraphs, values from the kernels' counts --------------------------------
class _Lazy:
    """``of()``, computed on first use."""

    __slots__ = ("of", "value")

    def __init__(self, of):
        self.of, self.value = of, None

    def __call__(self):
        if self.value is None:
            self.value = self.of()
        return self.value


def _chars(method: str):
    """A per-character metric: ``CharStats.<method>(i)`` (bound directly when the stats are computed)."""
    def make(words, chars, rep, cut):
        if isinstance(chars, _Lazy):
            return lambda i: getattr(chars(), method)(i)
        return getattr(chars, method)
    return make


def _word_repetition(words, chars, rep, cut):
    return (lambda i: rep()[i]) if isinstance(rep, _Lazy) else rep.__getitem__


def _vocabulary_ratio(vocabulary: str):
    def make(words, chars, rep, cut):
        counts, in_vocab = words.counts, words.in_vocab[vocabulary]
        return lambda i: in_vocab[i] / counts[i] if counts[i] else 0.0
    return make


def _punctuation_compiled(words, chars, rep, cut):
    min_tokens = getattr(cut, "punctuation_min_tokens", -1)
    if isinstance(chars, _Lazy):
        return lambda i: chars().punct_ratio(i, min_tokens)
    punct_ratio = chars.punct_ratio
    return lambda i: punct_ratio(i, min_tokens)


# name -> make(words, chars, rep, cut) -> value of row i. ``words``: fast_metrics.Words (or any object with
# ``counts`` and ``in_vocab``); ``chars``: fast_metrics.CharStats; ``rep``: the word repetition ratios
# (either of the last two may be a _Lazy, computed on first use).
COMPILED: dict[str, Callable] = {
    "number_words": lambda words, chars, rep, cut: words.counts.__getitem__,
    "character_repetition_ratio": _chars("char_rep"),
    "word_repetition_ratio": _word_repetition,
    "special_character_ratio": _chars("special_ratio"),
    "stopword_ratio": _vocabulary_ratio("stop"),
    "flagged_word_ratio": _vocabulary_ratio("flagged"),
    "punctuation_ratio": _punctuation_compiled,
    "common_word_ratio": _vocabulary_ratio("common"),
}

RowPlan = list[tuple[str, Callable[[int], float], float | None, float | None]]


def compiled_plan(checks: Plan, words, chars, rep, cut) -> RowPlan:
    """``checks`` with each metric's value of row i from the kernels' results; ``chars`` and ``rep`` may be
    zero-argument callables, then computed only if a check reaches them."""
    chars = _Lazy(chars) if callable(chars) else chars
    rep = _Lazy(rep) if callable(rep) else rep
    return [(c.name, COMPILED[c.name](words, chars, rep, cut), lo, hi) for c, lo, hi in checks]


def first_failure(row_plan: RowPlan, i: int) -> Verdict:
    """The first check that row ``i`` fails (None: it passes all), each value computed only when reached."""
    for name, value, lo, hi in row_plan:
        v = value(i)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return name
    return None
