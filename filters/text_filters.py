"""Paragraph (node) and document text filters of reference §5.3–§5.4, and the URL ban check.

Every check returns a :data:`filters.base.Verdict`: ``None`` keeps, a reason string drops. Reasons are
the original's check names (``number_words``, ``stopword_ratio``, ...); stages count them per level as
``paragraph:<reason>``, ``node:<reason>`` and ``document:<reason>``.

Comparisons follow the original: a ``*_min`` cutoff drops values strictly below it, a ``*_max`` cutoff
values strictly above it, word-count ranges are inclusive; a cutoff set to ``null`` switches the check
off. Checks run in the original order and the first failure decides.

``obelics-2023`` reproduces the original exactly (glued perplexity, 2,000-word document cap,
case-sensitive URL substrings, no re-check after dedup). ``default`` fixes reference §9: no document
length cap, URL ban words matched case-insensitively on word boundaries, per-paragraph perplexity
(:mod:`filters.perplexity`), and :func:`recheck_documents` for documents that dedup changed.

Speed: :meth:`TextFilter.paragraph_verdict` is the straightforward check list. The chain itself judges
all paragraphs of a document at once (:meth:`TextFilter.paragraph_verdicts`, compiled metrics of
:mod:`filters.fast_metrics` when Numba is installed), reuses the paragraphs' words at document level,
and runs the model checks (language id, then perplexity) for all documents of a batch after the other
checks (:meth:`TextFilter.model_verdicts`). Every value and verdict is the same as the straightforward
path's (tests/filters/test_fast_metrics.py).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from filters import fast_metrics
from filters.base import FilterStats, Verdict
from filters.fast_metrics import (
    CharStats,
    Words,
    char_stats,
    word_repetition_ids,
    word_repetition_many,
    words_many,
)
from filters.text_metrics import (
    character_repetition_ratio,
    get_words,
    punctuation_ratio,
    special_character_ratio,
    standardize_whitespace,
    word_ratio,
    word_repetition_ratio,
)
from filters.wordlists import ResourceMissing, load_wordlist
from obelics.document import EOD_TOKEN, WebDocument

log = logging.getLogger(__name__)


@dataclass
class NodeChecks:
    """Paragraph-level cutoffs (reference §5.3); ``null`` switches a check off."""

    number_words_min: int | None = 4
    number_words_max: int | None = 1000
    character_repetition_length: int = 10
    character_repetition_max: float | None = 0.1
    word_repetition_length: int = 5
    word_repetition_max: float | None = 0.1
    special_character_ratio_max: float | None = 0.3
    # the registry list is larger than the original's: 0.35 agrees best with the original list at 0.3
    stopword_ratio_min: float | None = 0.35
    flagged_word_ratio_max: float | None = 0.01
    punctuation_ratio_min: float | None = 0.001
    punctuation_min_tokens: int = 12          # fewer tokens: the paragraph passes the punctuation check
    common_word_ratio_min: float | None = 0.8  # applied only when a common-words list is configured


@dataclass
class DocChecks:
    """Document-level cutoffs (reference §5.4); ``null`` switches a check off."""

    number_images_min: int | None = 1
    number_images_max: int | None = 30
    number_words_min: int | None = 10
    number_words_max: int | None = None       # default: long documents are not dropped (§9 #12); 2023: 2000
    character_repetition_length: int = 10
    character_repetition_max: float | None = 0.1
    word_repetition_length: int = 5
    word_repetition_max: float | None = 0.2
    special_character_ratio_max: float | None = 0.275
    stopword_ratio_min: float | None = 0.4    # registry list (the original list: 0.35)
    flagged_word_ratio_max: float | None = 0.01
    punctuation_ratio_min: float | None = 0.03
    common_word_ratio_min: float | None = 0.9


@dataclass
class TextFiltersConfig:
    """The ``text_filters`` profile section."""

    enabled: bool = True
    node_level: bool = True
    doc_level: bool = True
    # Word lists: "registry" (maintained packages, corrected lists) or "obelics-2023" (the original lists).
    wordlists: Literal["registry", "obelics-2023"] = "registry"
    stopwords_path: str | None = None
    flagged_words_path: str | None = None
    common_words_path: str | None = None      # not public: the common-word checks run only with a list
    standardize_whitespace: bool = True
    node: NodeChecks = field(default_factory=NodeChecks)
    doc: DocChecks = field(default_factory=DocChecks)
    # Image-URL ban words: "word" (case-insensitive, word boundaries), "substring" (the original,
    # case-sensitive), or "off".
    url_ban: Literal["word", "substring", "off"] = "word"
    url_ban_words_path: str | None = None
    # Re-apply the document-level checks to documents that dedup / opt-out changed (the original never did).
    recheck_after_dedup: bool = True


# ---------------------------------------------------------------------------------------------------------
# URL ban words
# ---------------------------------------------------------------------------------------------------------

_URL_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def url_words(url: str) -> list[str]:
    """Lower-cased words of a URL, split on non-letters and on camelCase humps (``siteLogo`` -> site, logo)."""
    return [w.lower() for w in _URL_WORD_RE.findall(url)]


@lru_cache(maxsize=32)
def _ban_words(mode: str, source: str, path: str | None) -> frozenset[str]:
    return load_wordlist("url_ban_words", source, path)


def url_is_banned(url: str | None, cfg: TextFiltersConfig | None = None) -> Verdict:
    """``"url_ban:<word>"`` if the image URL contains a ban word, else ``None``.

    ``substring`` (obelics-2023): case-sensitive substring, as the original (``silicon`` is hit by
    ``icon``). ``word``: a URL word (split on non-letters and camelCase, lower-cased) equal to a ban word
    or its plural, so ``/img/site-logo.png``, ``SiteLogo.png`` and ``icons/`` are hit but ``silicon``,
    ``Essex`` and ``buttonwood`` are not.
    """
    cfg = cfg or TextFiltersConfig()
    if not url or cfg.url_ban == "off":
        return None
    words = _ban_words(cfg.url_ban, cfg.wordlists, cfg.url_ban_words_path)
    if cfg.url_ban == "substring":
        for w in sorted(words):
            if w in url:
                return f"url_ban:{w}"
        return None
    lowered = {w.lower() for w in words}
    for w in url_words(url):
        if w in lowered:
            return f"url_ban:{w}"
        if w.endswith("s") and w[:-1] in lowered:
            return f"url_ban:{w[:-1]}"
    return None


# ---------------------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Lists:
    stopwords: frozenset[str]
    flagged: frozenset[str]
    common: frozenset[str] | None


def _load_lists(cfg: TextFiltersConfig) -> _Lists:
    common = None
    if cfg.common_words_path:
        common = load_wordlist("common_words", cfg.wordlists, cfg.common_words_path)
    return _Lists(
        stopwords=load_wordlist("stopwords", cfg.wordlists, cfg.stopwords_path),
        flagged=load_wordlist("flagged_words", cfg.wordlists, cfg.flagged_words_path),
        common=common,
    )


@dataclass
class _Batch:
    """Metrics of many paragraphs computed at once (:meth:`TextFilter.paragraph_verdicts`)."""

    words: Words
    chars: CharStats
    word_rep: list[float]

    def ratio(self, vocabulary: str, i: int) -> float:
        """= ``word_ratio(words[i], <vocabulary>)``."""
        n = self.words.counts[i]
        return self.words.in_vocab[vocabulary][i] / n if n else 0.0


class _DocumentWords:
    """The words of a document's full text, from its paragraphs' batch when all are there (ids and
    vocabulary counts already known), else from ``get_words``; the same values either way."""

    def __init__(self, chain: TextFilter, full: str):
        self.chain = chain
        memo = chain._words_memo
        entries = [memo.get(p) for p in full.split("\n\n")]
        batch = entries[0][0] if entries and isinstance(entries[0], tuple) else None
        if batch is not None and all(isinstance(e, tuple) and e[0] is batch for e in entries):
            self.batch, self.index = batch, [e[1] for e in entries]
            counts = batch.words.counts
            self.n = sum(counts[i] for i in self.index)
        else:
            self.batch = None
            self.words = []
            for p, e in zip(full.split("\n\n"), entries):
                self.words.extend(e if isinstance(e, list) else get_words(p))
            self.n = len(self.words)

    def repetition(self, n: int) -> float:
        if self.batch is None:
            if self.chain.fast:
                return word_repetition_many([self.words], n)[0]
            return word_repetition_ratio(self.words, n)
        w = self.batch.words
        ids = np.concatenate([w.ids[w.offsets[i]:w.offsets[i + 1]] for i in self.index])
        return word_repetition_ids(ids, [self.n], n)[0]

    def ratio(self, name: str, vocabulary) -> float:
        if self.batch is None:
            return word_ratio(self.words, vocabulary)
        counts = self.batch.words.in_vocab[name]
        return sum(counts[i] for i in self.index) / self.n if self.n else 0.0


def _too_low(value: float, cutoff: float | None) -> bool:
    return cutoff is not None and value < cutoff


def _too_high(value: float, cutoff: float | None) -> bool:
    return cutoff is not None and value > cutoff


class TextFilter:
    """Paragraph and document verdicts for one profile, with its word lists and models loaded once.

    ``langid`` and ``perplexity`` are optional scorers (:class:`filters.langid.LanguageFilter`,
    :class:`filters.perplexity.PerplexityFilter`); ``None`` switches those checks off.
    """

    def __init__(self, cfg: TextFiltersConfig | None = None, langid=None, perplexity=None,
                 fast: bool | None = None):
        self.cfg = cfg or TextFiltersConfig()
        try:
            self.lists = _load_lists(self.cfg)
        except ResourceMissing:
            raise
        self.langid = langid
        self.perplexity = perplexity
        # the compiled per-character metrics (filters.fast_metrics) when Numba is installed; the same values
        self.fast = fast_metrics.available() if fast is None else fast
        if self.fast:
            vocabularies = {"stop": self.lists.stopwords, "flagged": self.lists.flagged}
            if self.lists.common is not None:
                vocabularies["common"] = self.lists.common
            self._vocabularies = fast_metrics.Vocabularies(vocabularies)
        # words of the paragraphs judged by the last filter_nodes call (a list, or (batch, index)), reused
        # by document_verdict (document words = the paragraphs' words in order: "\n" splits words anyway)
        self._words_memo: dict[str, list[str] | tuple[_Batch, int]] = {}

    @classmethod
    def from_profile(cls, profile) -> TextFilter:
        """Build the chain of a :class:`obelics.config.Profile` (text filters + langid + perplexity)."""
        from filters.langid import LangIdConfig, LanguageFilter
        from filters.perplexity import PerplexityConfig, PerplexityFilter

        cfg = profile.section("text_filters", TextFiltersConfig)
        lcfg = profile.section("langid", LangIdConfig)
        pcfg = profile.section("perplexity", PerplexityConfig)
        langid = LanguageFilter(lcfg) if (lcfg.node_level or lcfg.doc_level) else None
        ppl = PerplexityFilter(pcfg) if (pcfg.node_level or pcfg.doc_level) else None
        return cls(cfg, langid, ppl)

    # -- paragraphs ------------------------------------------------------------------------------
    def paragraph_verdict(self, text: str, batch: _Batch | None = None, i: int = 0) -> Verdict:
        """Reason the paragraph fails (first failing check of §5.3), or ``None``.

        ``batch`` (optional): the metrics of many paragraphs computed at once (:meth:`paragraph_verdicts`);
        ``text`` is its paragraph ``i``. The values, and so the verdict, are the same.
        """
        c = self.cfg.node
        if batch:
            words, n = None, batch.words.counts[i]  # the batch has every value computed from the words
        else:
            words = get_words(text)
            n = len(words)
        if _too_low(n, c.number_words_min) or _too_high(n, c.number_words_max):
            return "number_words"
        if c.character_repetition_max is not None and _too_high(
                batch.chars.char_rep(i) if batch else character_repetition_ratio(text, c.character_repetition_length),
                c.character_repetition_max):
            return "character_repetition_ratio"
        if c.word_repetition_max is not None and _too_high(
                batch.word_rep[i] if batch else word_repetition_ratio(words, c.word_repetition_length),
                c.word_repetition_max):
            return "word_repetition_ratio"
        if c.special_character_ratio_max is not None and _too_high(
                batch.chars.special_ratio(i) if batch else special_character_ratio(text), c.special_character_ratio_max):
            return "special_character_ratio"
        if c.stopword_ratio_min is not None and _too_low(
                batch.ratio("stop", i) if batch else word_ratio(words, self.lists.stopwords), c.stopword_ratio_min):
            return "stopword_ratio"
        if c.flagged_word_ratio_max is not None and _too_high(
                batch.ratio("flagged", i) if batch else word_ratio(words, self.lists.flagged),
                c.flagged_word_ratio_max):
            return "flagged_word_ratio"
        if c.punctuation_ratio_min is not None and _too_low(
                batch.chars.punct_ratio(i, c.punctuation_min_tokens) if batch
                else punctuation_ratio(text, c.punctuation_min_tokens), c.punctuation_ratio_min):
            return "punctuation_ratio"
        if self.lists.common is not None and c.common_word_ratio_min is not None and _too_low(
                batch.ratio("common", i) if batch else word_ratio(words, self.lists.common), c.common_word_ratio_min):
            return "common_word_ratio"
        if self.langid is not None and self.langid.cfg.node_level:
            v = self.langid.verdict(text)
            if v:
                return v
        if self.perplexity is not None and self.perplexity.cfg.node_level:
            v = self.perplexity.paragraph_verdict(text)
            if v:
                return v
        if batch is None:
            self._words_memo[text] = words
        return None

    def paragraph_verdicts(self, paragraphs: list[str]) -> list[Verdict]:
        """:meth:`paragraph_verdict` of every paragraph (``None`` for the end-of-document token).

        With Numba installed, the character metrics and word repetition of all of them are computed in
        one compiled pass each (:mod:`filters.fast_metrics`), with the same values.
        """
        batch = None
        if self.fast and paragraphs:
            c = self.cfg.node
            words = words_many(paragraphs, self._vocabularies)
            batch = _Batch(words, char_stats(paragraphs, c.character_repetition_length),
                           word_repetition_ids(words.ids, words.counts, c.word_repetition_length))
            memo = self._words_memo
            for i, p in enumerate(paragraphs):  # for document_verdict: a kept paragraph's words and ids
                memo[p] = (batch, i)
        verdict = self.paragraph_verdict
        return [None if p == EOD_TOKEN else verdict(p, batch, i) for i, p in enumerate(paragraphs)]

    def filter_text(self, text: str, stats: FilterStats | None = None,
                    decisions: list | None = None) -> str | None:
        """The text node after paragraph filtering (kept paragraphs re-joined), or ``None`` if none is left.

        ``decisions`` (optional) receives ``(paragraph, reason)`` for every paragraph.
        """
        paras = self._paragraphs(text)
        return self._keep(paras, self.paragraph_verdicts(paras), stats, decisions)

    def _paragraphs(self, text: str) -> list[str]:
        if self.cfg.standardize_whitespace:
            text = standardize_whitespace(text)
        return text.split("\n\n")

    @staticmethod
    def _keep(paras: list[str], reasons: list[Verdict], stats: FilterStats | None,
              decisions: list | None = None) -> str | None:
        kept = [para for para, reason in zip(paras, reasons) if reason is None]
        if stats is not None:
            stats.seen("paragraph", len(paras))
            stats.kept("paragraph", len(kept))
            if len(kept) < len(paras):
                for reason, n in Counter(reasons).items():
                    if reason:
                        stats.drop("paragraph", reason, n)
        if decisions is not None:
            decisions.extend(zip(paras, reasons))
        return "\n\n".join(kept) if kept else None

    def filter_nodes(self, doc: WebDocument, stats: FilterStats | None = None) -> WebDocument:
        """Node level (§5.3, text part): filter every text node's paragraphs; drop emptied and null nodes.

        The paragraphs of all text nodes are judged in one :meth:`paragraph_verdicts` call.
        """
        self._words_memo.clear()
        nodes = []                      # (text node's paragraphs or None, image, metadata)
        flat: list[str] = []
        for t, i, m in zip(doc.texts, doc.images, doc.metadata):
            if i is not None:
                nodes.append((None, i, m))
            elif t is None:
                if stats is not None:
                    stats.drop("node", "empty_node")
            else:
                paras = self._paragraphs(t)
                nodes.append((paras, None, None))
                flat.extend(paras)
        reasons = self.paragraph_verdicts(flat)
        texts, images, metadata = [], [], []
        pos = 0
        for paras, i, m in nodes:
            if paras is None:
                texts.append(None)
                images.append(i)
                metadata.append(m)
                continue
            if stats is not None:
                stats.seen("node")
            new = self._keep(paras, reasons[pos:pos + len(paras)], stats)
            pos += len(paras)
            if new is None:
                if stats is not None:
                    stats.drop("node", "no_paragraph_left")
                continue
            if stats is not None:
                stats.kept("node")
            texts.append(new)
            images.append(None)
            metadata.append(None)
        return WebDocument(texts, images, metadata, dict(doc.general_metadata), doc.doc_id, doc.capture_date)

    # -- documents -------------------------------------------------------------------------------
    def image_count_verdict(self, doc: WebDocument) -> Verdict:
        """The first document check alone: the number of images."""
        c = self.cfg.doc
        n_img = sum(1 for i in doc.images if i is not None)
        if _too_low(n_img, c.number_images_min) or _too_high(n_img, c.number_images_max):
            return "number_images"
        return None

    def document_verdict(self, doc: WebDocument, models: bool = True) -> Verdict:
        """Reason the document fails (first failing check of §5.4), or ``None``.

        ``models=False`` stops before the checks that run models (language id, perplexity): see
        :meth:`model_verdicts`.
        """
        c = self.cfg.doc
        v = self.image_count_verdict(doc)
        if v:
            return v
        texts = [t for t in doc.texts if t]
        full = "\n\n".join(texts)
        words = _DocumentWords(self, full)
        n = words.n
        if _too_low(n, c.number_words_min) or _too_high(n, c.number_words_max):
            return "number_words"
        chars = char_stats([full], c.character_repetition_length) if self.fast else None
        if c.character_repetition_max is not None and _too_high(
                chars.char_rep(0) if chars else character_repetition_ratio(full, c.character_repetition_length),
                c.character_repetition_max):
            return "character_repetition_ratio"
        if c.word_repetition_max is not None and _too_high(
                words.repetition(c.word_repetition_length), c.word_repetition_max):
            return "word_repetition_ratio"
        if c.special_character_ratio_max is not None and _too_high(
                chars.special_ratio(0) if chars else special_character_ratio(full), c.special_character_ratio_max):
            return "special_character_ratio"
        if c.stopword_ratio_min is not None and _too_low(words.ratio("stop", self.lists.stopwords),
                                                         c.stopword_ratio_min):
            return "stopword_ratio"
        if c.flagged_word_ratio_max is not None and _too_high(words.ratio("flagged", self.lists.flagged),
                                                              c.flagged_word_ratio_max):
            return "flagged_word_ratio"
        if c.punctuation_ratio_min is not None and _too_low(
                chars.punct_ratio(0) if chars else punctuation_ratio(full), c.punctuation_ratio_min):
            return "punctuation_ratio"
        if self.lists.common is not None and c.common_word_ratio_min is not None and _too_low(
                words.ratio("common", self.lists.common), c.common_word_ratio_min):
            return "common_word_ratio"
        return self.model_verdicts([texts])[0] if models else None

    @property
    def runs_models(self) -> bool:
        """Whether the document level has checks that run models (language id, perplexity)."""
        return ((self.langid is not None and self.langid.cfg.doc_level)
                or (self.perplexity is not None and self.perplexity.cfg.doc_level))

    def model_verdicts(self, documents: list[list[str]]) -> list[Verdict]:
        """The last document checks (language id, then perplexity) of documents given as their non-empty
        texts; each check runs over all documents before the next, so each model's tables stay in the
        processor's cache (the verdicts are those of running them document by document)."""
        reasons: list[Verdict] = [None] * len(documents)
        if self.langid is not None and self.langid.cfg.doc_level:
            verdict = self.langid.verdict
            reasons = [verdict("\n\n".join(texts)) for texts in documents]
        if self.perplexity is not None and self.perplexity.cfg.doc_level:
            verdict = self.perplexity.document_verdict
            reasons = [r or verdict(texts) for r, texts in zip(reasons, documents)]
        return reasons


# ---------------------------------------------------------------------------------------------------------
# Stage functions
# ---------------------------------------------------------------------------------------------------------

_CHAINS: dict[str, TextFilter] = {}


def text_filter_for(profile) -> TextFilter:
    """The :class:`TextFilter` of a profile (cached per profile content)."""
    import json

    key = json.dumps([profile.name, profile.data.get("text_filters"), profile.data.get("langid"),
                      profile.data.get("perplexity")], sort_keys=True, default=str)
    chain = _CHAINS.get(key)
    if chain is None:
        chain = _CHAINS[key] = TextFilter.from_profile(profile)
    return chain


def filter_documents(docs, profile, stats: FilterStats, rejects: list | None = None) -> list[WebDocument]:
    """Node-level then document-level text filters (+ language id and perplexity per the profile).

    Returns the kept documents (their text nodes filtered). Drops are counted in ``stats`` by level
    and reason; ``rejects`` (optional) receives ``(document, "document:<reason>")`` for each dropped one.
    """
    from obelics.config import load_profile

    profile = load_profile(profile) if isinstance(profile, str) else profile
    chain = text_filter_for(profile)
    if not chain.cfg.enabled:
        return stats.pass_through(list(docs))
    models = chain.cfg.doc_level and chain.runs_models
    decided: list[list] = []            # [document after node level, reason], in input order
    waiting: list[int] = []             # documents that passed every check before the models
    for doc in docs:
        stats.seen("document")
        # The image count (first document check) does not depend on the text filters: a document that
        # fails it is dropped before its paragraphs are filtered (same decision, less work; its
        # paragraphs are then not counted).
        reason = chain.image_count_verdict(doc) if chain.cfg.doc_level else None
        new = doc
        if reason is None:
            new = chain.filter_nodes(doc, stats) if chain.cfg.node_level else doc
            reason = chain.document_verdict(new, models=False) if chain.cfg.doc_level else None
            if reason is None and models:
                waiting.append(len(decided))
        decided.append([new, reason])
    # the model checks last, for all waiting documents at once (same verdicts, models hot in cache)
    reasons = chain.model_verdicts([[t for t in decided[k][0].texts if t] for k in waiting])
    for k, reason in zip(waiting, reasons):
        decided[k][1] = reason
    out: list[WebDocument] = []
    for new, reason in decided:
        stats.decide(new, reason, out, rejects)
    return out


def recheck_documents(docs, profile, stats: FilterStats, rejects: list | None = None) -> list[WebDocument]:
    """Re-apply the document-level checks to documents that a later step (dedup, opt-out) changed.

    A no-op when the profile's ``text_filters.recheck_after_dedup`` is false (``obelics-2023``: the
    original never re-checked, so final documents can have fewer than 10 words).
    """
    from obelics.config import load_profile

    profile = load_profile(profile) if isinstance(profile, str) else profile
    chain = text_filter_for(profile)
    docs = list(docs)
    if not (chain.cfg.enabled and chain.cfg.recheck_after_dedup):
        return stats.pass_through(docs)
    out = []
    for doc in docs:
        stats.seen("document")
        reason = chain.document_verdict(doc)
        stats.decide(doc, f"recheck:{reason}" if reason else None, out, rejects)
    return out
